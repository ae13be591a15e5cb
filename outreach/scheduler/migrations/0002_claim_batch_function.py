"""The PostgreSQL claim function: a batch of claims in one round trip.

Each claim of the batch is the same all-or-nothing sequence of conditional UPDATEs as
:func:`outreach.scheduler.claim.claim_one` (message still scheduled, mailbox pacing slot
free, one unit of every counter), run server-side inside its own exception block, which is a
subtransaction: a refused step rolls back the steps before it, exactly like the savepoint the
Python path uses. One call replaces about five round trips per claim.

The function is versioned by name (``outreach_claim_batch_v1``): a change to the claim is a new
migration creating ``_v2``, so code and database always agree on what a call does. SQLite has no
such function; there the Python path runs (no round trips to save in an embedded database).
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

CREATE = r"""
CREATE OR REPLACE FUNCTION outreach_claim_batch_v1(
    message_ids bigint[],
    mailbox_ids bigint[],
    provider_ids bigint[],
    next_send_ats timestamptz[],
    unit_counts integer[],
    unit_scopes text[],
    unit_keys text[],
    unit_caps bigint[],
    quota_day date,
    claimed_at timestamptz,
    lease_until timestamptz,
    worker text,
    allowed_states text[]
) RETURNS TABLE (outcome text, full_scope text, full_key text)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    u integer;
    first_unit integer := 1;
    changed integer;
    reason text;
    scope_ text;
    key_ text;
BEGIN
    FOR i IN 1 .. coalesce(array_length(message_ids, 1), 0) LOOP
        reason := 'claimed';
        scope_ := '';
        key_ := '';
        BEGIN
            -- ``quota_day`` is qualified with the function's name where a column of the same
            -- name could be meant.
            -- 1. The message, still scheduled; a row another process is claiming right now
            --    is skipped, not waited for.
            UPDATE campaigns_message SET
                state = 'claimed', mailbox_id = mailbox_ids[i],
                provider_account_id = provider_ids[i], claimed_by = worker,
                lease_expires_at = lease_until, quota_day = outreach_claim_batch_v1.quota_day,
                updated_at = claimed_at
            WHERE id = (
                SELECT m.id FROM campaigns_message m
                WHERE m.id = message_ids[i] AND m.state = 'scheduled'
                FOR UPDATE SKIP LOCKED
            );
            GET DIAGNOSTICS changed = ROW_COUNT;
            IF changed <> 1 THEN
                reason := 'gone';
                RAISE EXCEPTION USING ERRCODE = 'OC001';
            END IF;
            -- 2. The mailbox's pacing slot, while it and its domain may still send.
            UPDATE pool_mailbox SET next_send_at = next_send_ats[i]
            WHERE id = mailbox_ids[i]
              AND state = ANY (allowed_states)
              AND (next_send_at IS NULL OR next_send_at <= claimed_at)
              AND EXISTS (
                  SELECT 1 FROM pool_domain d
                  WHERE d.id = pool_mailbox.domain_id AND d.state = 'active'
              );
            GET DIAGNOSTICS changed = ROW_COUNT;
            IF changed <> 1 THEN
                reason := 'busy';
                RAISE EXCEPTION USING ERRCODE = 'OC001';
            END IF;
            -- 3. One unit of every cap, in the counters' sorted order.
            FOR u IN first_unit .. first_unit + unit_counts[i] - 1 LOOP
                UPDATE scheduler_dailycounter SET used = used + 1
                WHERE scope = unit_scopes[u] AND "key" = unit_keys[u]
                  AND day = outreach_claim_batch_v1.quota_day
                  AND (unit_caps[u] IS NULL OR used < unit_caps[u]);
                GET DIAGNOSTICS changed = ROW_COUNT;
                IF changed <> 1 THEN
                    reason := 'full';
                    PERFORM 1 FROM scheduler_dailycounter
                    WHERE scope = unit_scopes[u] AND "key" = unit_keys[u]
                      AND day = outreach_claim_batch_v1.quota_day;
                    IF FOUND THEN
                        scope_ := unit_scopes[u];
                        key_ := unit_keys[u];
                    ELSE
                        -- A counter row is missing: try again on a later pass.
                        scope_ := 'global';
                        key_ := '*';
                    END IF;
                    RAISE EXCEPTION USING ERRCODE = 'OC001';
                END IF;
            END LOOP;
        EXCEPTION
            WHEN SQLSTATE 'OC001' THEN
                NULL;  -- refused: the block's changes are rolled back, the reason stands
            WHEN deadlock_detected OR serialization_failure OR lock_not_available THEN
                reason := 'busy';
                scope_ := '';
                key_ := '';
        END;
        first_unit := first_unit + unit_counts[i];
        outcome := reason;
        full_scope := scope_;
        full_key := key_;
        RETURN NEXT;
    END LOOP;
END;
$$
"""

DROP = "DROP FUNCTION IF EXISTS outreach_claim_batch_v1"


def create(apps: object, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps: object, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0001_initial"),
        ("campaigns", "0001_initial"),
        ("pool", "0002_dns_checks"),
    ]

    operations = [migrations.RunPython(create, drop)]
