-- mcp-authz: API keys and endpoints in PostgreSQL (docs/stores.md).
-- Applied once by `mcp-authz db migrate` (or at start with stores.postgres.migrate: true), in
-- one transaction, recorded in mcp_authz.schema_migrations. The service itself only reads
-- these tables and LISTENs; `mcp-authz keys create/revoke --store postgres` writes them.

CREATE SCHEMA IF NOT EXISTS mcp_authz;

-- One row per API key: the SHA-256 of the key, never the key.
CREATE TABLE mcp_authz.api_keys (
  id          text        PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_.:-]{1,64}$'),
  sha256      text        NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  name        text        CHECK (name <> ''),
  -- The user the key belongs to (a private key); NULL for a shared (public) key.
  owner       text        CHECK (owner <> ''),
  role        text        CHECK (role <> ''),
  -- Grants as in the keys file: "*", "tools:<name>", "prompts:<name>", "resources:<uri>".
  grants      text[]      NOT NULL DEFAULT '{}'
                          CHECK (array_position(grants, NULL) IS NULL),
  expires_at  timestamptz,
  disabled    boolean     NOT NULL DEFAULT false,
  -- Set by `keys revoke`: the row stays for the audit trail and the key is refused.
  revoked_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per endpoint: `definition` is the endpoint as in the config's endpoints[] (match,
-- auth, resource, scopes, ...) without its name and owner, which are columns.
CREATE TABLE mcp_authz.endpoints (
  name        text        PRIMARY KEY CHECK (name ~ '^[a-zA-Z0-9_.-]{1,64}$'),
  owner       text        CHECK (owner <> ''),
  definition  jsonb       NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every change is announced to the replicas, which drop what they cached for it.
-- Channel mcp_authz_keys carries the key's sha256 (both hashes when an update changes it);
-- "*" means "forget everything" (TRUNCATE). Channel mcp_authz_endpoints carries the name.
CREATE FUNCTION mcp_authz.notify_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('mcp_authz_keys', '*');
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('mcp_authz_keys', OLD.sha256);
  END IF;
  IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.sha256 IS DISTINCT FROM OLD.sha256) THEN
    PERFORM pg_notify('mcp_authz_keys', NEW.sha256);
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_notify
  AFTER INSERT OR UPDATE OR DELETE ON mcp_authz.api_keys
  FOR EACH ROW EXECUTE FUNCTION mcp_authz.notify_key_change();
CREATE TRIGGER api_keys_notify_truncate
  AFTER TRUNCATE ON mcp_authz.api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION mcp_authz.notify_key_change();

CREATE FUNCTION mcp_authz.notify_endpoint_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('mcp_authz_endpoints', '*');
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('mcp_authz_endpoints', OLD.name);
  ELSE
    PERFORM pg_notify('mcp_authz_endpoints', NEW.name);
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER endpoints_notify
  AFTER INSERT OR UPDATE OR DELETE ON mcp_authz.endpoints
  FOR EACH ROW EXECUTE FUNCTION mcp_authz.notify_endpoint_change();
CREATE TRIGGER endpoints_notify_truncate
  AFTER TRUNCATE ON mcp_authz.endpoints
  FOR EACH STATEMENT EXECUTE FUNCTION mcp_authz.notify_endpoint_change();
