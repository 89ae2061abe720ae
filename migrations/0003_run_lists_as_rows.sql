-- Tags and strategies, one row per item, in one place each. Until now tags were stored twice (the
-- `tags_json` list on `runs`, which kept order and repeats, and `run_tags`, a set for the filter)
-- and strategies as ",ema,swa," matched with LIKE. Both become ordered lists of rows; the old
-- columns go. Rows rather than JSON arrays: SQLite's JSON functions cut text at `\u0000`.

CREATE TABLE run_tags_new (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,              -- the list's order (repeats kept)
    tag      TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;

-- The list as `tags_json` holds it (order and repeats), read with json_each...
INSERT INTO run_tags_new (run_id, position, tag)
    SELECT r.id, j.key, j.value FROM runs r, json_each(r.tags_json) j
    WHERE j.type = 'text' AND instr(r.tags_json, '\u0000') = 0;
-- ...except where a tag holds a NUL, which json_each would cut: those runs keep the exact text of
-- their old `run_tags` rows (a set: no order was kept there, so they come in text order).
INSERT INTO run_tags_new (run_id, position, tag)
    SELECT t.run_id, row_number() OVER (PARTITION BY t.run_id ORDER BY t.tag) - 1, t.tag
    FROM run_tags t JOIN runs r ON r.id = t.run_id
    WHERE instr(r.tags_json, '\u0000') > 0;

DROP TABLE run_tags;
ALTER TABLE run_tags_new RENAME TO run_tags;
CREATE INDEX run_tags_tag ON run_tags(tag, run_id);

CREATE TABLE run_strategies (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    kind     TEXT NOT NULL,                 -- an averaging kind, `kd` or `fixres`
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;
CREATE INDEX run_strategies_kind ON run_strategies(kind, run_id);

-- ",ema,swa," split at its commas, empty pieces dropped (as the old reader split it).
WITH RECURSIVE piece(run_id, position, kind, rest) AS (
    SELECT id, -1, '', substr(strategies, 2) FROM runs WHERE strategies <> ''
    UNION ALL
    SELECT run_id, position + 1,
           CASE WHEN instr(rest, ',') > 0 THEN substr(rest, 1, instr(rest, ',') - 1) ELSE rest END,
           CASE WHEN instr(rest, ',') > 0 THEN substr(rest, instr(rest, ',') + 1) ELSE '' END
    FROM piece WHERE rest <> ''
)
INSERT INTO run_strategies (run_id, position, kind)
    SELECT run_id, position, kind FROM piece WHERE position >= 0 AND kind <> '';

ALTER TABLE runs DROP COLUMN tags_json;
ALTER TABLE runs DROP COLUMN strategies;
