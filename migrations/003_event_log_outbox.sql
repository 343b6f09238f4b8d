-- SPDX-License-Identifier: Apache-2.0
-- RxFlow PostgreSQL schema, version 3: the event log is the outbox. Subscriptions (the
-- relay first of all) read the log from a checkpoint they keep in `subscriptions`, with a
-- lease that makes one reader of a subscription active across processes; appends no longer
-- write outbox rows. Applied once, like every file here, inside the migrating transaction
-- under the adapter's advisory lock: on a fresh database right after 001 and 002, on one
-- made by release 0.1.0 alone. Stop every 0.1.0 process before upgrading: their appends
-- call the rxflow_append this file replaces.

CREATE TABLE IF NOT EXISTS subscriptions (
  name TEXT PRIMARY KEY,
  position BIGINT NOT NULL DEFAULT 0,     -- global position handled up to (0: from the start)
  owner TEXT NOT NULL DEFAULT '',         -- the reader holding the lease ('' when released)
  lease_until BIGINT NOT NULL DEFAULT 0   -- micros since the epoch (the adapter's clock)
);

-- Upgrade in place: the relay's subscription starts at the first event that still has an
-- unpublished outbox row (it republishes from there: consumers deduplicate by message id),
-- or at the head when nothing is pending. Outbox message ids are "<event id>:audit",
-- "<event id>:event" or "<event id>:route". Then the outbox goes. (On a fresh database 001
-- has just created an empty outbox: the relay starts at 0.)
DO $$
DECLARE
  v_position BIGINT;
  v_orphans BIGINT;
BEGIN
  IF to_regclass('outbox') IS NULL THEN
    RETURN;
  END IF;
  -- Hold off appends (the position row first, in rxflow_append's lock order) and claims,
  -- so that nothing pending appears or disappears between the count and the drop.
  PERFORM 1 FROM event_position WHERE id = 1 FOR UPDATE;
  LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE;
  SELECT MIN(e.global_position) - 1 INTO v_position
  FROM outbox o JOIN events e ON e.event_id = split_part(o.message_id, ':', 1)
  WHERE NOT o.published;
  IF v_position IS NULL THEN
    SELECT COALESCE(MAX(e.global_position), 0) INTO v_position FROM events e;
  END IF;
  SELECT COUNT(*) INTO v_orphans FROM outbox o
  WHERE NOT o.published
    AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = split_part(o.message_id, ':', 1));
  IF v_orphans > 0 THEN
    RAISE WARNING 'rxflow 003: % unpublished outbox rows name no stored event and are dropped',
      v_orphans;
  END IF;
  INSERT INTO subscriptions (name, position) VALUES ('outbox-relay', v_position)
  ON CONFLICT (name) DO NOTHING;
  DROP TABLE outbox;  -- with its id sequence and the outbox_pending index
END;
$$;

-- rxflow_append without outbox rows: one append (events, idempotency key) in one server
-- round trip. Conflicts are answered, not raised: code 'ok', 'aborted' (version conflict;
-- detail names the versions), 'exists' (idempotency key taken; detail = the stream holding
-- it), or 'unique' (a duplicate event id or version; detail = the constraint). A refused
-- append changes nothing (the exception block is a server-side savepoint). The signature
-- changes, so the old function is dropped rather than replaced.
DROP FUNCTION IF EXISTS rxflow_append(TEXT, BIGINT, TEXT, JSONB, JSONB, BIGINT);
CREATE OR REPLACE FUNCTION rxflow_append(
    p_stream TEXT, p_expected BIGINT, p_key TEXT, p_events JSONB)
RETURNS TABLE (code TEXT, detail TEXT, last_version BIGINT, last_position BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
  v_current BIGINT;
  v_existing TEXT;
  v_n INTEGER := jsonb_array_length(p_events);
  v_last BIGINT := 0;
  v_constraint TEXT;
BEGIN
  -- Every append takes the position row lock first, so appends from several processes
  -- always lock in the same order (position, then idempotency/event rows): no deadlocks.
  -- The lock is held until the transaction commits, so positions follow commit order and a
  -- reader tailing the log never skips an event.
  PERFORM 1 FROM event_position WHERE id = 1 FOR UPDATE;
  SELECT COALESCE(MAX(e.version), 0) INTO v_current FROM events e WHERE e.stream_id = p_stream;
  IF p_expected <> -1 AND p_expected <> v_current THEN
    RETURN QUERY SELECT 'aborted'::TEXT, ('expected ' || p_expected || ', current ' || v_current),
                        v_current, 0::BIGINT;
    RETURN;
  END IF;
  BEGIN
    IF p_key <> '' THEN
      INSERT INTO idempotency (key, stream_id) VALUES (p_key, p_stream) ON CONFLICT (key) DO NOTHING;
      IF NOT FOUND THEN
        SELECT i.stream_id INTO v_existing FROM idempotency i WHERE i.key = p_key;
        RETURN QUERY SELECT 'exists'::TEXT, v_existing, v_current, 0::BIGINT;
        RETURN;
      END IF;
    END IF;
    IF v_n > 0 THEN
      UPDATE event_position SET last = last + v_n WHERE id = 1 RETURNING last INTO v_last;
      INSERT INTO events (global_position, event_id, stream_id, version, type, schema_version,
                          occurred_at, correlation_id, causation_id, actor, tenant, traceparent, payload)
      SELECT v_last - v_n + t.ord, t.x->>'event_id', p_stream, v_current + t.ord, t.x->>'type',
             (t.x->>'schema_version')::INTEGER, (t.x->>'occurred_at')::BIGINT,
             t.x->>'correlation_id', t.x->>'causation_id', t.x->>'actor', t.x->>'tenant',
             t.x->>'traceparent', t.x->>'payload'
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS t(x, ord)
      ORDER BY t.ord;
    END IF;
    RETURN QUERY SELECT 'ok'::TEXT, ''::TEXT, v_current + v_n, v_last;
  EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
    RETURN QUERY SELECT 'unique'::TEXT, v_constraint, v_current, 0::BIGINT;
  END;
END;
$$;

-- rxflow_append_batch: several appends in one server round trip (the adapter's writer
-- thread sends its whole batch). p_appends is a JSON array of
-- {"stream": ..., "expected": ..., "key": ..., "events": [...]}; each element is one
-- rxflow_append call, in array order, so each keeps its own savepoint and answer. One row
-- per element: `ord` is its 1-based index in the array.
CREATE OR REPLACE FUNCTION rxflow_append_batch(p_appends JSONB)
RETURNS TABLE (ord BIGINT, code TEXT, detail TEXT, last_version BIGINT, last_position BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
  v_a RECORD;
BEGIN
  FOR v_a IN
    SELECT t.x, t.n FROM jsonb_array_elements(p_appends) WITH ORDINALITY AS t(x, n) ORDER BY t.n
  LOOP
    RETURN QUERY
      SELECT v_a.n, r.code, r.detail, r.last_version, r.last_position
      FROM rxflow_append(v_a.x->>'stream', (v_a.x->>'expected')::BIGINT, v_a.x->>'key',
                         v_a.x->'events') AS r;
  END LOOP;
END;
$$;
