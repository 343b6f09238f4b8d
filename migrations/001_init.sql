-- SPDX-License-Identifier: Apache-2.0
-- RxFlow PostgreSQL schema, version 1. Applied by the postgres adapter on open (each file in
-- migrations/ once, in order, recorded in rxflow_migrations).
CREATE TABLE IF NOT EXISTS events (
  global_position BIGINT NOT NULL,
  event_id TEXT NOT NULL UNIQUE,
  stream_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  type TEXT NOT NULL,
  schema_version INTEGER NOT NULL,
  occurred_at BIGINT NOT NULL,
  correlation_id TEXT NOT NULL,
  causation_id TEXT NOT NULL,
  actor TEXT NOT NULL,
  tenant TEXT NOT NULL,
  traceparent TEXT NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE (stream_id, version),
  UNIQUE (global_position)
);
-- Global positions are handed out under this row's lock at the end of each appending
-- transaction, so they increase in commit order (a sequence would not).
CREATE TABLE IF NOT EXISTS event_position (id INTEGER PRIMARY KEY CHECK (id = 1), last BIGINT NOT NULL);
INSERT INTO event_position (id, last) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, stream_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (stream_id TEXT PRIMARY KEY, version BIGINT NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id BIGSERIAL PRIMARY KEY,
  message_id TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  key TEXT NOT NULL,
  payload TEXT NOT NULL,
  headers TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  published BOOLEAN NOT NULL DEFAULT FALSE,
  claimed_until BIGINT NOT NULL DEFAULT 0,
  available_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE NOT published;
CREATE TABLE IF NOT EXISTS inbox (
  consumer TEXT NOT NULL, message_id TEXT NOT NULL, processed_at BIGINT NOT NULL,
  PRIMARY KEY (consumer, message_id));
CREATE TABLE IF NOT EXISTS projection_rows (name TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (name, key));
CREATE TABLE IF NOT EXISTS projection_checkpoints (name TEXT PRIMARY KEY, position BIGINT NOT NULL);
