-- The root group of every benthic attribute: the top of its parent chain in the lake's benthic_attributes
-- tree (e.g. Acropora -> Hard coral), for the taxonomic split of a classifier's errors (an error within
-- the same root group is a near miss; one across groups is not). Run over the snapshot's pinned table
-- versions. A chain is followed at most 64 steps (the tree is a few levels deep; a cycle stops there).
WITH RECURSIVE walk(id, ancestor, depth) AS (
    SELECT id, id, 0 FROM benthic_attributes
    UNION ALL
    SELECT w.id, b.parent_id, w.depth + 1
    FROM walk AS w
    JOIN benthic_attributes AS b ON b.id = w.ancestor
    WHERE b.parent_id IS NOT NULL AND b.parent_id <> '' AND w.depth < 64
),
roots AS (
    SELECT id, arg_max(ancestor, depth) AS root_id FROM walk GROUP BY id
)
SELECT r.id AS benthic_attribute_id, r.root_id, coalesce(b.name, r.root_id) AS root_name
FROM roots AS r
LEFT JOIN benthic_attributes AS b ON b.id = r.root_id
ORDER BY benthic_attribute_id
