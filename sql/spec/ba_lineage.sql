-- The benthic attribute tree, walked upwards: one row per (BA, ancestor-or-self) of the pinned
-- `benthic_attributes` table (parent_id NULL at the roots), with the number of steps between them
-- (`distance`, 0 for the BA itself) and the `path` walked (the BA first). `spec rollups` reads it as a
-- temp table `lineage`: a BA's depth is its largest distance + 1 (a root has depth 1).
-- Guarded: the walk never revisits a BA already on its path, so a cycle in parent_id ends the walk
-- instead of recursing forever (taxonomy_problems.sql then reports it; ingest refuses cycles, but a lake
-- written by another tool might hold one).
WITH RECURSIVE walk(ba_id, ancestor_id, distance, path) AS (
    SELECT id, id, 0, [id]
    FROM benthic_attributes
    UNION ALL
    SELECT w.ba_id, b.parent_id, w.distance + 1, list_append(w.path, b.parent_id)
    FROM walk AS w
    JOIN benthic_attributes AS b ON b.id = w.ancestor_id
    WHERE b.parent_id IS NOT NULL AND NOT list_contains(w.path, b.parent_id)
)
SELECT ba_id, ancestor_id, distance, path
FROM walk
