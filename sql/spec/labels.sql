-- The classes of `spec labels`: the (BA, GF) pairs that snapshot steps 1-4 leave (chained before this
-- file by the snapshot's own shaping_query over the label groups: map, sources, drop growth forms,
-- rollups), with their annotations, so the counts are exactly what a snapshot of the same recipe holds
-- before step 5 (include/exclude; step 6 can still drop annotations without features).
-- `rank` orders every class by annotations (largest first), ties by (ba_id, gf_id): a total order.
-- `drop_reason` says why a class is left out of the include list: 'fewer_annotations' (fewer than
-- $min_annotations) or 'not_in_top' (past the first $top classes; $top NULL = no cap). Classes with
-- enough annotations come first in rank order, so the kept ones are the $top largest of those.
SELECT
    r.ba_id,
    coalesce(b.name, '') AS ba_name,
    r.gf_id,
    coalesce(g.name, '') AS gf_name,
    r.annotations,
    r.rank,
    CASE
        WHEN r.annotations < $min_annotations THEN 'fewer_annotations'
        WHEN r.rank > $top THEN 'not_in_top'
    END AS drop_reason
FROM (
    SELECT *, row_number() OVER (ORDER BY annotations DESC, ba_id, gf_id) AS rank
    FROM (
        SELECT
            benthic_attribute_id AS ba_id,
            growth_form_id AS gf_id,
            CAST(sum(annotations) AS BIGINT) AS annotations
        FROM step_rollup
        WHERE drop_reason IS NULL
        GROUP BY ALL
    )
) AS r
LEFT JOIN benthic_attributes AS b ON b.id = r.ba_id
LEFT JOIN growth_forms AS g ON g.id = r.gf_id
ORDER BY r.rank
