"""Administration of identities and grants: what the CLI (and later the admin API) do, in one place."""
