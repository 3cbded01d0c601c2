"""The hub as OAuth 2.1 authorization server and resource server (issue 3).

One module per concern, each citing what it implements: `scopes` (grant patterns), `keys` (signing keys,
JWKS), `tokens` (RFC 9068 access tokens), `decisions` (the one decision point for list and call),
`client_auth` (token endpoint client authentication), `private_key_jwt` (RFC 7523), `endpoints`
(RFC 8414 and RFC 9728 metadata, JWKS, the token endpoint), `grant_client_credentials`,
`grant_authorization_code`, `grant_refresh_token` and `delegated_scopes` (the grant types),
`authorize` (the authorization endpoint with consent), `registration` (RFC 7591), `client_metadata`
(Client ID Metadata Documents, with the egress guard), `revocation` (RFC 7009), `introspection`
(RFC 7662), `resource` (the bearer-token middleware in front of `/mcp`), `service` and `wiring`
(composition).
"""
