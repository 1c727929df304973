-- The rollup rules of `spec rollups`, in the format snapshot step 4 reads (sql/snapshot/04_rollup.sql:
-- an exact (BA, GF) match, '' = no growth form), with names for people.
-- Each BA's target, from the tree walk `lineage` (ba_lineage.sql):
--   $mode 'depth':   the ancestor at depth $depth (root = depth 1); BAs at depth <= $depth stay.
--   $mode 'targets': the nearest ancestor-or-self listed in spec_targets(ba_id); BAs with none stay.
-- Because matching is exact, the rules list (BA, GF) pairs: every pair that occurs in
-- `annotations_mapped` (both sites, whatever a snapshot later selects) plus (BA, '') for every BA, each
-- to (target, same GF), or to (target, '') with $drop_growthforms. Rules that change nothing (from =
-- to) are left out, so no rule's target is another rule's source: no chains. Ordered for people (by
-- target, then source, names first) and totally (the ids end each key; (from_ba_id, from_gf_id) is unique).
WITH depth_of AS (
    SELECT ba_id, max(distance) + 1 AS depth
    FROM lineage
    GROUP BY ba_id
),
target_of AS (
    SELECT
        l.ba_id,
        CASE
            WHEN $mode = 'depth'
                THEN arg_min(l.ancestor_id, l.distance) FILTER (WHERE l.distance = greatest(d.depth - $depth, 0))
            ELSE coalesce(arg_min(l.ancestor_id, l.distance) FILTER (WHERE t.ba_id IS NOT NULL), l.ba_id)
        END AS to_ba_id
    FROM lineage AS l
    JOIN depth_of AS d ON d.ba_id = l.ba_id
    LEFT JOIN spec_targets AS t ON t.ba_id = l.ancestor_id
    GROUP BY l.ba_id
),
pairs AS (
    SELECT DISTINCT benthic_attribute_id AS ba_id, growth_form_id AS gf_id FROM annotations_mapped
    UNION
    SELECT id AS ba_id, '' AS gf_id FROM benthic_attributes
),
rules AS (
    SELECT
        p.ba_id AS from_ba_id,
        p.gf_id AS from_gf_id,
        t.to_ba_id,
        CASE WHEN $drop_growthforms THEN '' ELSE p.gf_id END AS to_gf_id
    FROM pairs AS p
    JOIN target_of AS t ON t.ba_id = p.ba_id
)
SELECT
    r.from_ba_id,
    fb.name AS from_ba_name,
    r.from_gf_id,
    coalesce(fg.name, '') AS from_gf_name,
    r.to_ba_id,
    tb.name AS to_ba_name,
    r.to_gf_id,
    coalesce(tg.name, '') AS to_gf_name
FROM rules AS r
JOIN benthic_attributes AS fb ON fb.id = r.from_ba_id
JOIN benthic_attributes AS tb ON tb.id = r.to_ba_id
LEFT JOIN growth_forms AS fg ON fg.id = r.from_gf_id
LEFT JOIN growth_forms AS tg ON tg.id = r.to_gf_id
WHERE r.from_ba_id <> r.to_ba_id OR r.from_gf_id <> r.to_gf_id
ORDER BY to_ba_name, r.to_ba_id, to_gf_name, r.to_gf_id, from_ba_name, r.from_ba_id, from_gf_name, r.from_gf_id
