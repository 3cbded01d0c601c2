"""The hub's pages for humans: sign-in, browser sessions, consent and the approver's pages, as a small web app.

- `sessions`: the session cookie, its CSRF token and the same-origin check for forms (OWASP session
  management and CSRF prevention cheat sheets; RFC 6265bis cookie prefixes and `SameSite`).
- `pages`: the Jinja2 templates of `templates/` (autoescaped), the security headers and CSP every page carries,
  and the hub's own forms. `assets`: the stylesheet and script of `static/`, served under `/static/`.
- `access`: the one check in front of routes for users of some role (`RequireRole`).
- `errors`: hub errors as page problems and JSON API errors.
- `login`: `GET/POST /login`, `POST /logout`. `consent`: the consent page of `/oauth/authorize`.
- `approvals`: the approver's pages, event stream and JSON API.

The protocols behind the pages (`mcp_hub.authz`, `mcp_hub.approvals`) know nothing about HTML.
"""
