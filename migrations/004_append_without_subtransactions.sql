-- SPDX-License-Identifier: Apache-2.0
-- RxFlow PostgreSQL schema, version 4: appends without subtransactions, and one update of
-- the position row per call.
--
-- Version 3's rxflow_append ran inside a BEGIN … EXCEPTION block (a subtransaction) and
-- updated event_position there, a row its caller had locked FOR UPDATE: every append of a
-- batch made a new MultiXact with one member more (GetMultiXactIdMembers was the server's
-- top function under load), and a batch of more than 64 appends overflowed the backend's
-- subtransaction cache, which slows every other backend's snapshots. Now conflicts are found
-- before anything is written: every append holds the position row lock, so what a check sees
-- under it still holds when the rows are inserted. The answers are those of version 3:
-- 'ok', 'aborted' (version conflict), 'exists' (idempotency key taken), 'unique' (an event
-- id already stored, or twice in the append; detail names the constraint).

-- The checks of one append, made with the position row locked, and the claim of its
-- idempotency key: 'ok' with the stream's current version (the caller then inserts the
-- events), or the refusal, having written nothing. p_ids are the append's event ids.
CREATE OR REPLACE FUNCTION rxflow_append_check(
    p_stream TEXT, p_expected BIGINT, p_key TEXT, p_ids TEXT[])
RETURNS TABLE (code TEXT, detail TEXT, current_version BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
  v_current BIGINT;
  v_existing TEXT;
  v_id TEXT;
BEGIN
  SELECT COALESCE(MAX(e.version), 0) INTO v_current FROM events e WHERE e.stream_id = p_stream;
  IF p_expected <> -1 AND p_expected <> v_current THEN
    RETURN QUERY SELECT 'aborted'::TEXT, ('expected ' || p_expected || ', current ' || v_current),
                        v_current;
    RETURN;
  END IF;
  IF p_key <> '' THEN
    SELECT i.stream_id INTO v_existing FROM idempotency i WHERE i.key = p_key;
    IF FOUND THEN
      RETURN QUERY SELECT 'exists'::TEXT, v_existing, v_current;
      RETURN;
    END IF;
  END IF;
  IF (SELECT COUNT(DISTINCT u) FROM unnest(p_ids) AS u) < COALESCE(cardinality(p_ids), 0) THEN
    RETURN QUERY SELECT 'unique'::TEXT, 'events_event_id_key'::TEXT, v_current;
    RETURN;
  END IF;
  -- One index probe per event id: a cached plan for `event_id = ANY (array)` made while the
  -- table was small stays a sequential scan as it grows.
  FOREACH v_id IN ARRAY COALESCE(p_ids, '{}'::TEXT[]) LOOP
    IF EXISTS (SELECT 1 FROM events e WHERE e.event_id = v_id) THEN
      RETURN QUERY SELECT 'unique'::TEXT, 'events_event_id_key'::TEXT, v_current;
      RETURN;
    END IF;
  END LOOP;
  IF p_key <> '' THEN
    INSERT INTO idempotency (key, stream_id) VALUES (p_key, p_stream);
  END IF;
  RETURN QUERY SELECT 'ok'::TEXT, ''::TEXT, v_current;
END;
$$;

-- One append given as version 3's JSON array of events, whose events take the global
-- positions after p_base. Never writes the position row: the caller holds its lock and
-- moves it. n_events is the number of positions used.
CREATE OR REPLACE FUNCTION rxflow_append_at(
    p_stream TEXT, p_expected BIGINT, p_key TEXT, p_events JSONB, p_base BIGINT)
RETURNS TABLE (code TEXT, detail TEXT, last_version BIGINT, n_events BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
  v_n INTEGER := jsonb_array_length(p_events);
  v_ids TEXT[];
  c RECORD;
BEGIN
  SELECT array_agg(t.x->>'event_id') INTO v_ids FROM jsonb_array_elements(p_events) AS t(x);
  SELECT * INTO c FROM rxflow_append_check(p_stream, p_expected, p_key, v_ids) AS k;
  IF c.code <> 'ok' THEN
    RETURN QUERY SELECT c.code, c.detail, c.current_version, 0::BIGINT;
    RETURN;
  END IF;
  IF v_n > 0 THEN
    INSERT INTO events (global_position, event_id, stream_id, version, type, schema_version,
                        occurred_at, correlation_id, causation_id, actor, tenant, traceparent, payload)
    SELECT p_base + t.ord, t.x->>'event_id', p_stream, c.current_version + t.ord, t.x->>'type',
           (t.x->>'schema_version')::INTEGER, (t.x->>'occurred_at')::BIGINT,
           t.x->>'correlation_id', t.x->>'causation_id', t.x->>'actor', t.x->>'tenant',
           t.x->>'traceparent', t.x->>'payload'
    FROM jsonb_array_elements(p_events) WITH ORDINALITY AS t(x, ord)
    ORDER BY t.ord;
  END IF;
  RETURN QUERY SELECT 'ok'::TEXT, ''::TEXT, c.current_version + v_n, v_n::BIGINT;
END;
$$;

-- One append, as in version 3: the position row is locked first (the lock order of every
-- append, so appends from several processes never deadlock) and held until commit, so
-- positions follow commit order and a reader tailing the log never skips an event.
CREATE OR REPLACE FUNCTION rxflow_append(
    p_stream TEXT, p_expected BIGINT, p_key TEXT, p_events JSONB)
RETURNS TABLE (code TEXT, detail TEXT, last_version BIGINT, last_position BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
  v_last BIGINT;
  r RECORD;
BEGIN
  SELECT p.last INTO v_last FROM event_position p WHERE p.id = 1 FOR UPDATE;
  SELECT * INTO r FROM rxflow_append_at(p_stream, p_expected, p_key, p_events, v_last) AS a;
  IF r.code = 'ok' AND r.n_events > 0 THEN
    UPDATE event_position SET last = v_last + r.n_events WHERE id = 1;
    RETURN QUERY SELECT r.code, r.detail, r.last_version, v_last + r.n_events;
    RETURN;
  END IF;
  RETURN QUERY SELECT r.code, r.detail, r.last_version, 0::BIGINT;
END;
$$;

-- Several appends in one server round trip, each answered on its own (one row per element
-- of p_appends, `ord` its 1-based index), with the position row locked once and moved once.
CREATE OR REPLACE FUNCTION rxflow_append_batch(p_appends JSONB)
RETURNS TABLE (ord BIGINT, code TEXT, detail TEXT, last_version BIGINT, last_position BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
  v_a RECORD;
  r RECORD;
  v_start BIGINT;
  v_last BIGINT;
BEGIN
  SELECT p.last INTO v_start FROM event_position p WHERE p.id = 1 FOR UPDATE;
  v_last := v_start;
  FOR v_a IN
    SELECT t.x, t.n FROM jsonb_array_elements(p_appends) WITH ORDINALITY AS t(x, n) ORDER BY t.n
  LOOP
    SELECT * INTO r FROM rxflow_append_at(v_a.x->>'stream', (v_a.x->>'expected')::BIGINT,
                                          v_a.x->>'key', v_a.x->'events', v_last) AS a;
    IF r.code = 'ok' AND r.n_events > 0 THEN
      v_last := v_last + r.n_events;
      RETURN QUERY SELECT v_a.n, r.code, r.detail, r.last_version, v_last;
    ELSE
      RETURN QUERY SELECT v_a.n, r.code, r.detail, r.last_version, 0::BIGINT;
    END IF;
  END LOOP;
  IF v_last > v_start THEN
    UPDATE event_position SET last = v_last WHERE id = 1;
  END IF;
END;
$$;
