-- What stops `spec rollups` from walking the tree (checked before any rule is computed): a BA whose
-- walk up `lineage` comes back to itself ('cycle', with the loop as `chain`: "Name (id) -> ... -> the
-- first again"), or a parent_id that is no benthic attribute ('unknown_parent'). Ingest refuses both;
-- this guards lakes written by other tools. One row per problem BA, in a total order.
WITH cycles AS (
    SELECT w.ba_id, list_append(w.path, w.ba_id) AS path
    FROM lineage AS w
    JOIN benthic_attributes AS b ON b.id = w.ancestor_id
    WHERE b.parent_id = w.ba_id
),
unknown_parents AS (
    SELECT b.id AS ba_id, [b.id, b.parent_id] AS path
    FROM benthic_attributes AS b
    LEFT JOIN benthic_attributes AS p ON p.id = b.parent_id
    WHERE b.parent_id IS NOT NULL AND p.id IS NULL
),
problems AS (
    SELECT 'cycle' AS problem, ba_id, path FROM cycles
    UNION ALL
    SELECT 'unknown_parent' AS problem, ba_id, path FROM unknown_parents
)
SELECT
    p.problem,
    p.ba_id,
    string_agg(concat(coalesce(b.name, '?'), ' (', p.path[i.i], ')'), ' -> ' ORDER BY i.i) AS chain
FROM problems AS p
CROSS JOIN LATERAL (SELECT range AS i FROM range(1, len(p.path) + 1)) AS i
LEFT JOIN benthic_attributes AS b ON b.id = p.path[i.i]
GROUP BY p.problem, p.ba_id
ORDER BY p.problem, p.ba_id
