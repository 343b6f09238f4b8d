-- SPDX-License-Identifier: Apache-2.0
-- Data keys of field-level encryption (docs/security.md, "PHI at rest"): each wrapped by a
-- key-encryption key that never enters the database. Version 0 is a destroyed key's
-- tombstone (crypto-erasure deletes the versions; VACUUM reclaims their dead tuples).
CREATE TABLE IF NOT EXISTS data_keys (
  key_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  kek_id TEXT NOT NULL,
  wrapped TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (key_id, version)
);
