"""The schema as numbered migrations keyed on ``PRAGMA user_version``.

Each migration runs once, in order, inside the writer's transaction. Never edit a shipped
migration: append a new one.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE channels (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        topic       TEXT NOT NULL DEFAULT '',
        summary     TEXT NOT NULL DEFAULT '',
        hops        INTEGER NOT NULL DEFAULT 0,
        paused      INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL
    );

    CREATE TABLE agents (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        base          TEXT NOT NULL,
        instance_id   TEXT NOT NULL,
        slot          INTEGER NOT NULL,
        label         TEXT NOT NULL,
        color         TEXT NOT NULL,
        token_hash    TEXT,
        left_at       REAL,
        retired       INTEGER NOT NULL DEFAULT 0,
        activity      TEXT NOT NULL DEFAULT '',  -- '' until the wrapper reports busy or idle
        last_seen     REAL NOT NULL,
        last_channel  TEXT NOT NULL DEFAULT '',
        role          TEXT NOT NULL DEFAULT '',
        hat           TEXT NOT NULL DEFAULT '',
        created_at    REAL NOT NULL
    );
    CREATE UNIQUE INDEX agents_live_name ON agents(name) WHERE retired = 0;
    CREATE INDEX agents_instance ON agents(base, instance_id) WHERE retired = 0;
    CREATE UNIQUE INDEX agents_token ON agents(token_hash) WHERE token_hash IS NOT NULL;

    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        channel_id  INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        sender      TEXT NOT NULL,
        agent_id    INTEGER REFERENCES agents(id),
        kind        TEXT NOT NULL DEFAULT 'human',
        type        TEXT NOT NULL DEFAULT 'chat',
        text        TEXT NOT NULL,
        reply_to    INTEGER,
        attachments TEXT NOT NULL DEFAULT '[]',
        metadata    TEXT NOT NULL DEFAULT '{}',
        created_at  REAL NOT NULL,
        edited_at   REAL,
        deleted     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_channel ON messages(channel_id, id);
    CREATE INDEX messages_agent ON messages(agent_id) WHERE agent_id IS NOT NULL;

    CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id');
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END;

    CREATE TABLE cursors (
        agent_id    INTEGER NOT NULL REFERENCES agents(id),
        channel_id  INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        last_id     INTEGER NOT NULL,
        PRIMARY KEY (agent_id, channel_id)
    ) WITHOUT ROWID;

    CREATE TABLE triggers (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id    INTEGER NOT NULL REFERENCES agents(id),
        channel     TEXT NOT NULL,
        message_id  INTEGER NOT NULL,
        job_id      INTEGER NOT NULL DEFAULT 0,
        sender      TEXT NOT NULL,
        prompt      TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'queued',
        detail      TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE INDEX triggers_pending ON triggers(agent_id, id) WHERE state != 'injected';

    CREATE TABLE rules (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        channel     TEXT NOT NULL DEFAULT '',
        text        TEXT NOT NULL,
        reason      TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL DEFAULT 'proposed',
        proposed_by TEXT NOT NULL,
        created_at  REAL NOT NULL
    );

    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        channel     TEXT NOT NULL,
        title       TEXT NOT NULL,
        body        TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL DEFAULT 'proposed',
        proposed_by TEXT NOT NULL,
        message_id  INTEGER,
        created_at  REAL NOT NULL
    );

    -- A durable, ordered log of everything a live view must see (messages, edits, deletes, channel
    -- changes). WebSocket clients resume from a sequence number, so nothing is lost across a
    -- reconnect, and a future multi-replica mode can tail it.
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        payload     TEXT NOT NULL,
        created_at  REAL NOT NULL
    );

    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: when a trigger was first streamed to the wrapper. Mentions fold only into a trigger the
    # wrapper has not received yet; one it is already typing could otherwise swallow a new mention.
    """
    ALTER TABLE triggers ADD COLUMN sent_at REAL;
    """,
    # 3: who proposed a job, by identity: accepting must wake that agent under its current name.
    """
    ALTER TABLE jobs ADD COLUMN proposer_id INTEGER REFERENCES agents(id);
    """,
    # 4: which messages each wake-up carries (a mention folded into a pending trigger, or one a
    # retry/new trigger took over), so the UI can show delivery next to every mentioning message.
    """
    CREATE TABLE trigger_messages (
        message_id  INTEGER NOT NULL,
        trigger_id  INTEGER NOT NULL,
        PRIMARY KEY (message_id, trigger_id)
    ) WITHOUT ROWID;
    CREATE INDEX trigger_messages_by_trigger ON trigger_messages(trigger_id);
    INSERT OR IGNORE INTO trigger_messages(message_id, trigger_id)
        SELECT message_id, id FROM triggers WHERE message_id > 0;
    """,
    # people: a stable person identity (the local person, or one per browser in network mode),
    # browser keys (hashed cookies) that map to it, and the author's person on people's messages.
    """
    CREATE TABLE persons (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL,
        is_local    INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL
    );
    CREATE UNIQUE INDEX persons_name ON persons(lower(name));
    CREATE UNIQUE INDEX persons_local ON persons(is_local) WHERE is_local = 1;
    CREATE TABLE person_keys (
        key_hash    TEXT PRIMARY KEY,
        person_id   INTEGER NOT NULL REFERENCES persons(id),
        created_at  REAL NOT NULL
    ) WITHOUT ROWID;
    ALTER TABLE messages ADD COLUMN person_id INTEGER REFERENCES persons(id);
    CREATE INDEX messages_person ON messages(person_id) WHERE person_id IS NOT NULL;
    """,
    # agent reclaim secret: SHA-256 of the secret a wrapper set at first registration; only its
    # holder may re-register the identity while it is live (issue 8 item 9).
    """
    ALTER TABLE agents ADD COLUMN reclaim_hash TEXT;
    """,
    # scrub on delete/edit (issue 8 item 1): events name their message so its logged copies can be
    # rewritten, uploads know which messages reference them; already deleted or edited messages'
    # logged copies are scrubbed now.
    """
    ALTER TABLE events ADD COLUMN message_id INTEGER;
    UPDATE events SET message_id = json_extract(payload, '$.message.id')
        WHERE json_type(payload, '$.message.id') = 'integer';
    CREATE INDEX events_message ON events(message_id) WHERE message_id IS NOT NULL;
    CREATE TABLE message_uploads (
        name        TEXT NOT NULL,
        message_id  INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        PRIMARY KEY (name, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX message_uploads_message ON message_uploads(message_id);
    INSERT OR IGNORE INTO message_uploads(name, message_id)
        SELECT substr(json_extract(a.value, '$.url'), 10), m.id FROM messages m, json_each(m.attachments) a
        WHERE m.deleted = 0 AND json_extract(a.value, '$.url') LIKE '/uploads/%';
    UPDATE messages SET metadata = '{}' WHERE deleted = 1;
    UPDATE events SET payload = json_set(payload,
            '$.message.text', m.text, '$.message.attachments', json(m.attachments),
            '$.message.metadata', json(m.metadata), '$.message.edited_at', m.edited_at,
            '$.message.deleted', json(CASE WHEN m.deleted THEN 'true' ELSE 'false' END))
        FROM messages m WHERE m.id = events.message_id AND m.edited_at IS NOT NULL;
    DELETE FROM events WHERE message_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = events.message_id);
    INSERT INTO messages_fts(messages_fts) VALUES ('optimize');
    """,
    # deferred scrub (review 11): a row here means removed text may still sit in index segments or
    # WAL frames; the background scrub clears it, and a restart after a crash finds it still owed.
    """
    CREATE TABLE scrub_owed (id INTEGER PRIMARY KEY CHECK (id = 1), since REAL NOT NULL);
    """,
    # jobs board (issue 9): proposals become cards (decision in the card's metadata), accepted ones
    # active jobs with the same id; each job has a thread (messages.job_id), order, its loop guard,
    # its live message count (kept by SQL triggers).
    # triggers.folds = 0: a wake-up with its own instruction (accepted, changes asked, convert),
    # which mentions never fold into and which never folds into a plain mention's wake-up.
    """
    CREATE TABLE jobs_board (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        uid            TEXT NOT NULL UNIQUE,
        channel_id     INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        title          TEXT NOT NULL,
        body           TEXT NOT NULL DEFAULT '',
        status         TEXT NOT NULL DEFAULT 'todo',
        created_by     TEXT NOT NULL DEFAULT '',
        assignee       TEXT NOT NULL DEFAULT '',
        anchor_msg_id  INTEGER,
        sort_order     INTEGER NOT NULL DEFAULT 0,
        hops           INTEGER NOT NULL DEFAULT 0,
        paused         INTEGER NOT NULL DEFAULT 0,
        message_count  INTEGER NOT NULL DEFAULT 0,
        created_at     REAL NOT NULL,
        updated_at     REAL NOT NULL
    );
    INSERT INTO jobs_board(id, uid, channel_id, title, body, status, created_by, anchor_msg_id,
            sort_order, created_at, updated_at)
        SELECT j.id, lower(hex(randomblob(16))),
            coalesce((SELECT c.id FROM channels c WHERE c.name = j.channel),
                     (SELECT c.id FROM channels c WHERE c.name = 'general')),
            j.title, j.body, 'active', j.proposed_by, j.message_id, j.id, j.created_at, j.created_at
        FROM jobs j WHERE j.status = 'accepted';
    -- ids of proposals that became no job are never handed out again
    DELETE FROM sqlite_sequence WHERE name = 'jobs_board';
    INSERT INTO sqlite_sequence(name, seq) SELECT 'jobs_board', max(
        coalesce((SELECT max(id) FROM jobs), 0),
        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0));
    -- old wake-ups named a proposal's id; job_id now means "in that job's thread"
    UPDATE triggers SET job_id = 0;
    UPDATE messages SET metadata = json_object(
            'title', j.title, 'body', j.body,
            'status', CASE j.status WHEN 'accepted' THEN 'accepted' WHEN 'declined' THEN 'dismissed'
                      ELSE 'proposed' END,
            'proposer_id', j.proposer_id)
        FROM jobs j
        WHERE messages.type = 'job_proposal' AND messages.deleted = 0
            AND j.id = json_extract(messages.metadata, '$.job_id');
    UPDATE messages SET metadata = json_set(metadata, '$.job_id', b.id)
        FROM jobs_board b
        WHERE messages.type = 'job_proposal' AND b.anchor_msg_id = messages.id
            AND json_extract(messages.metadata, '$.status') = 'accepted';
    UPDATE events SET payload = json_set(payload, '$.message.metadata', json(m.metadata))
        FROM messages m WHERE m.id = events.message_id AND m.type = 'job_proposal';
    DROP TABLE jobs;
    ALTER TABLE jobs_board RENAME TO jobs;
    CREATE INDEX jobs_board_order ON jobs(status, sort_order);
    CREATE INDEX jobs_channel ON jobs(channel_id);
    ALTER TABLE messages ADD COLUMN job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE;
    CREATE INDEX messages_timeline ON messages(channel_id, id) WHERE job_id IS NULL;
    CREATE INDEX messages_thread ON messages(job_id, id) WHERE job_id IS NOT NULL;
    -- the board's message_count: a covering count per job, however long its thread
    CREATE INDEX messages_thread_live ON messages(job_id, deleted) WHERE job_id IS NOT NULL;
    -- jobs.message_count (live thread messages) is kept exact by every insert, soft delete, delete
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON messages
        WHEN new.job_id IS NOT NULL AND new.deleted = 0
    BEGIN
        UPDATE jobs SET message_count = message_count + 1 WHERE id = new.job_id;
    END;
    CREATE TRIGGER jobs_count_soft_delete AFTER UPDATE OF deleted ON messages
        WHEN new.job_id IS NOT NULL AND old.deleted != new.deleted
    BEGIN
        UPDATE jobs SET message_count = message_count + CASE WHEN new.deleted THEN -1 ELSE 1 END
            WHERE id = new.job_id;
    END;
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON messages
        WHEN old.job_id IS NOT NULL AND old.deleted = 0
    BEGIN
        UPDATE jobs SET message_count = message_count - 1 WHERE id = old.job_id;
    END;
    CREATE TABLE job_cursors (
        agent_id    INTEGER NOT NULL REFERENCES agents(id),
        job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        last_id     INTEGER NOT NULL,
        PRIMARY KEY (agent_id, job_id)
    ) WITHOUT ROWID;
    ALTER TABLE triggers ADD COLUMN folds INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX triggers_unsent ON triggers(agent_id, channel, job_id) WHERE state = 'queued';
    -- a job deleted for good takes its title along: its "Job #N created" cards and its logged events
    CREATE INDEX messages_job_created ON messages(json_extract(metadata, '$.job_id'))
        WHERE type = 'job_created';
    CREATE INDEX events_job ON events(json_extract(payload, '$.job.id')) WHERE kind = 'job';
    """,
    # Summaries (issue 10): who wrote the channel's summary, and when.
    """
    ALTER TABLE channels ADD COLUMN summary_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE channels ADD COLUMN summary_at REAL;
    """,
    # Pins (issue 10): a pinned message, who pinned it (the person, whose current name is shown),
    # done or not. A deleted message loses its pin: by the foreign key when the row goes (a channel
    # or job deleted, /clear), by the trigger when it is blanked (an ordinary delete).
    """
    CREATE TABLE pins (
        message_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        pinned_by   TEXT NOT NULL,
        person_id   INTEGER REFERENCES persons(id),
        done        INTEGER NOT NULL DEFAULT 0,
        pinned_at   REAL NOT NULL
    );
    CREATE TRIGGER pins_drop_on_delete AFTER UPDATE OF deleted ON messages WHEN new.deleted != 0
    BEGIN
        DELETE FROM pins WHERE message_id = new.id;
    END;
    """,
    # Rules (issue 10): rules get a uid, author, order, draft/archived statuses and their proposal
    # card; declined rows go (their cards say dismissed); a room rules version and per-agent /
    # per-trigger records of which version a wake-up carried decide when rules are re-sent.
    """
    CREATE TABLE rules_new (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        uid         TEXT NOT NULL UNIQUE,
        text        TEXT NOT NULL,
        reason      TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL DEFAULT 'proposed',
        author      TEXT NOT NULL DEFAULT '',
        channel     TEXT NOT NULL DEFAULT '',
        sort_order  INTEGER NOT NULL DEFAULT 0,
        message_id  INTEGER,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    -- the old list ignored a rule's channel (where it was proposed): every old rule is room-wide
    INSERT INTO rules_new(id, uid, text, reason, status, author, channel, sort_order, message_id,
            created_at, updated_at)
        SELECT r.id, lower(hex(randomblob(16))), r.text, r.reason,
            CASE r.status WHEN 'pending' THEN 'proposed' ELSE r.status END, r.proposed_by, '', r.id,
            (SELECT min(m.id) FROM messages m WHERE m.type = 'rule_proposal'
                AND json_extract(m.metadata, '$.rule_id') = r.id),
            r.created_at, r.created_at
        FROM rules r WHERE r.status IN ('proposed', 'pending', 'draft', 'active', 'archived');
    UPDATE messages SET metadata = json_object('rule_id', r.id, 'text', r.text, 'reason', r.reason,
            'status', CASE WHEN r.status IN ('proposed', 'pending') THEN 'proposed'
                           WHEN r.status IN ('active', 'draft') THEN r.status
                           WHEN r.status = 'archived' THEN 'active' ELSE 'dismissed' END)
        FROM rules r
        WHERE messages.type = 'rule_proposal' AND messages.deleted = 0
            AND r.id = json_extract(messages.metadata, '$.rule_id');
    UPDATE events SET payload = json_set(payload, '$.message.metadata', json(m.metadata))
        FROM messages m WHERE m.id = events.message_id AND m.type = 'rule_proposal';
    -- ids of dropped rules (their cards still name them) are never handed out again
    DELETE FROM sqlite_sequence WHERE name = 'rules_new';
    INSERT INTO sqlite_sequence(name, seq) SELECT 'rules_new', max(
        coalesce((SELECT max(id) FROM rules), 0),
        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'rules'), 0));
    DROP TABLE rules;
    ALTER TABLE rules_new RENAME TO rules;
    CREATE INDEX rules_order ON rules(status, sort_order);
    CREATE TABLE room_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO room_state(key, value) SELECT 'rules_version',
        CASE WHEN EXISTS (SELECT 1 FROM rules WHERE status = 'active') THEN 1 ELSE 0 END;
    ALTER TABLE agents ADD COLUMN rules_seen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE agents ADD COLUMN wakes_since_rules INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE triggers ADD COLUMN rules_version INTEGER NOT NULL DEFAULT 0;
    """,
    # Agent colours (issue 10): 1 = a person chose this agent's colour, so a config colour no longer
    # overrides it when the agent comes back.
    """
    ALTER TABLE agents ADD COLUMN color_set INTEGER NOT NULL DEFAULT 0;
    """,
    # Rules limits (issue 10) on rules kept from older databases: a rule over 160 characters is
    # archived, not cut (a cut rule says something else; archived, a person can shorten it), and of
    # the active rules only the first 10 in the people's order stay active (the order is their
    # priority; the rest are archived, at the end of that group). The version moves when an agent's
    # active set changed; an archived proposal's card says dismissed.
    """
    UPDATE room_state SET value = value + 1 WHERE key = 'rules_version' AND EXISTS (
        SELECT 1 FROM rules WHERE status = 'active' AND (length(text) > 160 OR id NOT IN (
            SELECT id FROM rules WHERE status = 'active' AND length(text) <= 160
            ORDER BY sort_order, id LIMIT 10)));
    UPDATE messages SET metadata = json_set(metadata, '$.status', 'dismissed')
        WHERE type = 'rule_proposal' AND json_extract(metadata, '$.status') = 'proposed'
            AND id IN (SELECT message_id FROM rules WHERE status = 'proposed' AND length(text) > 160);
    UPDATE events SET payload = json_set(payload, '$.message.metadata', json(m.metadata))
        FROM messages m WHERE m.id = events.message_id AND m.type = 'rule_proposal';
    UPDATE rules SET status = 'archived', sort_order = (SELECT max(sort_order) FROM rules) + id
        WHERE status != 'archived' AND length(text) > 160;
    UPDATE rules SET status = 'archived', sort_order = (SELECT max(sort_order) FROM rules) + id
        WHERE status = 'active' AND id NOT IN (
            SELECT id FROM rules WHERE status = 'active' ORDER BY sort_order, id LIMIT 10);
    """,
    # Schedules (issue 11): prompts posted to agents later, once or on a recurrence; next_run is the
    # compare-and-set key that makes each due time fire once. A channel's schedules go with it.
    """
    CREATE TABLE schedules (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        uid           TEXT NOT NULL UNIQUE,
        channel_id    INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        prompt        TEXT NOT NULL,
        targets       TEXT NOT NULL DEFAULT '[]',
        spec          TEXT NOT NULL DEFAULT '',
        one_shot      INTEGER NOT NULL DEFAULT 0,
        active        INTEGER NOT NULL DEFAULT 1,
        next_run      REAL,
        last_run      REAL,
        run_count     INTEGER NOT NULL DEFAULT 0,
        created_by    TEXT NOT NULL,
        creator_kind  TEXT NOT NULL DEFAULT 'human',
        person_id     INTEGER REFERENCES persons(id),
        agent_id      INTEGER REFERENCES agents(id),
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE INDEX schedules_due ON schedules(next_run) WHERE active = 1;
    CREATE INDEX schedules_channel ON schedules(channel_id);
    """,
    # Session templates and drafts (issue 11): custom templates as their public JSON (built-ins
    # live in code), and an index finding a channel's draft cards by draft id.
    """
    CREATE TABLE session_templates (
        id          TEXT PRIMARY KEY,
        uid         TEXT NOT NULL UNIQUE,
        body        TEXT NOT NULL,
        created_by  TEXT,
        created_at  REAL
    );
    CREATE INDEX messages_session_draft ON messages(channel_id, json_extract(metadata, '$.draft_id'))
        WHERE type = 'session_draft';
    """,
    # Archives (issue 12): a message's stable uid. NULL means "<room uid>:m<id>" (derived, so no
    # backfill); an imported message keeps its origin uid here. The room uid is made once.
    """
    ALTER TABLE messages ADD COLUMN uid TEXT;
    CREATE UNIQUE INDEX messages_uid ON messages(uid) WHERE uid IS NOT NULL;
    INSERT OR IGNORE INTO settings(key, value) VALUES ('archive.room_uid', lower(hex(randomblob(16))));
    """,
    # Sessions (issue 11): a run of a template (its JSON snapshot) in a channel, whose turn it is and
    # the pending wake-up of that turn; at most one running (active/paused) session per channel.
    """
    CREATE TABLE sessions (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        uid                TEXT NOT NULL UNIQUE,
        channel_id         INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        template_id        TEXT,
        template           TEXT NOT NULL,
        "cast"             TEXT NOT NULL,
        people             TEXT NOT NULL DEFAULT '[]',
        goal               TEXT NOT NULL DEFAULT '',
        state              TEXT NOT NULL,
        phase              INTEGER NOT NULL DEFAULT 0,
        turn               INTEGER NOT NULL DEFAULT 0,
        turn_messages      TEXT NOT NULL DEFAULT '[]',
        output_message_id  INTEGER,
        end_reason         TEXT,
        wake_trigger_id    INTEGER,
        started_by         TEXT,
        started_at         REAL NOT NULL,
        updated_at         REAL NOT NULL,
        ended_at           REAL
    );
    CREATE UNIQUE INDEX sessions_running ON sessions(channel_id) WHERE state IN ('active', 'paused');
    CREATE INDEX sessions_channel ON sessions(channel_id);
    """,
    # sessions.version: bumped on every change of a session row, so pages can order copies of it.
    "ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the latest version; returns the version it ended at."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in _split(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    return len(MIGRATIONS)


def _split(sql: str) -> list[str]:
    """Split a migration into statements; ``sqlite3.complete_statement`` keeps triggers whole."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if line.strip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
