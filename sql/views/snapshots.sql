-- snapshots: the catalog of published snapshots, one row per snapshot ID (the `snapshots` Delta table,
-- view `snapshots_stored`). Creates append under a lock and never twice for one ID; a lake written by an
-- older version may hold repeated rows for one ID (a killed create, then concurrent creates of its
-- recipe): the earliest row stands for the ID.
SELECT * EXCLUDE (copy)
FROM (
    SELECT *, row_number() OVER (PARTITION BY snapshot_id ORDER BY created_at, name, message) AS copy
    FROM snapshots_stored
)
WHERE copy = 1
