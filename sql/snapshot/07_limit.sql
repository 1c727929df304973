-- Step 7, deterministic limit: per site, the rows whose md5(annotation_id) sorts first (ties broken by
-- annotation_id, so the order is total). Quotas $mermaid_quota / $coralnet_quota are computed by the
-- caller: half each when both sites are present (MERMAID gets the odd one), the other site filling any
-- shortfall; a quota never exceeds its site's rows. When the limit does not bind, the caller uses
-- 07_no_limit.sql instead (no sort needed).
-- Ranking the wide rows with a window cost 14 s at 4.9M rows. Instead each site's last selected row (`cut`)
-- is found by a top-N over the narrow (md5, annotation_id) pairs (LIMIT 1 OFFSET quota - 1), and rows are
-- kept by comparing with it: the same rows, in 8.6 s. A site with quota 0 has no cut and keeps nothing.
-- annotation_id is the derived key of views/macros.sql.
WITH keyed AS (
    SELECT
        site,
        md5(annotation_id_of(stored_annotation_id, source_id, image_id, "row", col, occurrence)) AS rank_md5,
        annotation_id_of(stored_annotation_id, source_id, image_id, "row", col, occurrence) AS rank_id
    FROM step_features
    WHERE drop_reason IS NULL
),
cut AS (
    (SELECT site, rank_md5, rank_id FROM keyed WHERE site = 'mermaid' AND $mermaid_quota > 0
     ORDER BY rank_md5, rank_id LIMIT 1 OFFSET greatest($mermaid_quota - 1, 0))
    UNION ALL
    (SELECT site, rank_md5, rank_id FROM keyed WHERE site = 'coralnet' AND $coralnet_quota > 0
     ORDER BY rank_md5, rank_id LIMIT 1 OFFSET greatest($coralnet_quota - 1, 0))
)
SELECT s.* EXCLUDE (drop_reason)
FROM step_features AS s
JOIN cut AS c ON c.site = s.site
WHERE s.drop_reason IS NULL
    AND (
        md5(annotation_id_of(s.stored_annotation_id, s.source_id, s.image_id, s."row", s.col, s.occurrence)),
        annotation_id_of(s.stored_annotation_id, s.source_id, s.image_id, s."row", s.col, s.occurrence)
    ) <= (c.rank_md5, c.rank_id)
