"""The hub's pages for humans: sign-in, browser sessions, and the HTML they are drawn with.

- `sessions`: the session cookie, its CSRF token and the same-origin check for forms (OWASP session
  management and CSRF prevention cheat sheets; RFC 6265bis cookie prefixes and `SameSite`).
- `login`: `GET/POST /login`, `POST /logout`.
- `pages`: HTML built from escaped values, and the security headers every page carries.

The consent page of the authorization endpoint (`mcp_hub.authz.authorize`) and the approval pages build on
these; nothing here knows about OAuth.
"""
