-- SPDX-License-Identifier: Apache-2.0
-- rxflow_append: one append (events, outbox rows, idempotency key) in one server round trip.
-- Conflicts are answered, not raised: code 'ok', 'aborted' (version conflict; detail names
-- the versions), 'exists' (idempotency key taken; detail = the stream holding it), or
-- 'unique' (a duplicate event or message id; detail = the constraint). A refused append
-- changes nothing (the exception block is a server-side savepoint).
CREATE OR REPLACE FUNCTION rxflow_append(
    p_stream TEXT, p_expected BIGINT, p_key TEXT, p_events JSONB, p_outbox JSONB, p_now BIGINT)
RETURNS TABLE (code TEXT, detail TEXT, last_version BIGINT, last_position BIGINT, outbox_ids BIGINT[])
LANGUAGE plpgsql AS $$
DECLARE
  v_current BIGINT;
  v_existing TEXT;
  v_n INTEGER := jsonb_array_length(p_events);
  v_last BIGINT := 0;
  v_ids BIGINT[] := '{}';
  v_constraint TEXT;
BEGIN
  -- Every append takes the position row lock first, so appends from several processes
  -- always lock in the same order (position, then idempotency/event rows): no deadlocks.
  PERFORM 1 FROM event_position WHERE id = 1 FOR UPDATE;
  SELECT COALESCE(MAX(e.version), 0) INTO v_current FROM events e WHERE e.stream_id = p_stream;
  IF p_expected <> -1 AND p_expected <> v_current THEN
    RETURN QUERY SELECT 'aborted'::TEXT, ('expected ' || p_expected || ', current ' || v_current),
                        v_current, 0::BIGINT, v_ids;
    RETURN;
  END IF;
  BEGIN
    IF p_key <> '' THEN
      INSERT INTO idempotency (key, stream_id) VALUES (p_key, p_stream) ON CONFLICT (key) DO NOTHING;
      IF NOT FOUND THEN
        SELECT i.stream_id INTO v_existing FROM idempotency i WHERE i.key = p_key;
        RETURN QUERY SELECT 'exists'::TEXT, v_existing, v_current, 0::BIGINT, v_ids;
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
    WITH ins AS (
      INSERT INTO outbox (message_id, topic, key, payload, headers, created_at)
      SELECT t.x->>'message_id', t.x->>'topic', t.x->>'key', t.x->>'payload', t.x->>'headers', p_now
      FROM jsonb_array_elements(p_outbox) WITH ORDINALITY AS t(x, ord)
      ORDER BY t.ord
      RETURNING id)
    SELECT COALESCE(array_agg(ins.id ORDER BY ins.id), '{}') INTO v_ids FROM ins;
    RETURN QUERY SELECT 'ok'::TEXT, ''::TEXT, v_current + v_n, v_last, v_ids;
  EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
    RETURN QUERY SELECT 'unique'::TEXT, v_constraint, v_current, 0::BIGINT, '{}'::BIGINT[];
  END;
END;
$$;

-- Event payloads (a NewRx is ~7 KB) are stored out of line without compression: pglz costs
-- more CPU per append than the bytes it saves.
ALTER TABLE events ALTER COLUMN payload SET STORAGE EXTERNAL;
