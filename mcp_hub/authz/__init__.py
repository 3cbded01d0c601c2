"""The hub as OAuth 2.1 authorization server and resource server (issue 3; docs/oauth.md).

One module per concern, each citing what it implements:

| module | concern |
|---|---|
| `urls` | the issuer, the one protected resource (RFC 8707), the endpoints' paths |
| `scopes` | grant patterns and scope strings (RFC 6749 §3.3) |
| `keys`, `tokens` | ES256 signing keys and the JWKS (RFC 7517); RFC 9068 access tokens |
| `decisions` | the one decision point for list and call: `Principal`, `Access`, `AccessDecider` |
| `bearer` | the resource server's authentication of a bearer token (RFC 6750) |
| `granting` | the scope a token gets: requested ∩ the subject's grants |
| `client_auth`, `private_key_jwt` | client authentication (RFC 6749 §2.3, RFC 7523) |
| `token_endpoint`, `grant_*` | the token endpoint and one module per grant type |
| `authorization` | the authorization endpoint's protocol (the consent page is `mcp_hub.web.consent`) |
| `registration`, `client_metadata` | RFC 7591 registration; Client ID Metadata Documents |
| `egress` | the egress guard that fetches what clients name (T11) |
| `revocation`, `introspection` | RFC 7009, RFC 7662 |
| `metadata` | RFC 8414 and RFC 9728 documents, the JWKS endpoint |
| `http` | OAuth on the wire: forms in, errors and bearer challenges out |

The parts are built and connected in `mcp_hub.runtime`; nothing here builds another part.
"""
