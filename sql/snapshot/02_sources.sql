-- Step 2, sources: keep MERMAID unless $include_mermaid is false, and the CoralNet sources listed in
-- table spec_sources(id) (none listed means no CoralNet). The join is on the id alone: listed ids are
-- integers, never 'mermaid' (a site test inside ON makes DuckDB evaluate it per row pair, ~8x slower).
SELECT
    s.* REPLACE (
        coalesce(
            s.drop_reason,
            CASE
                WHEN s.site = 'mermaid' AND NOT $include_mermaid THEN 'mermaid_not_included'
                WHEN s.site = 'coralnet' AND p.id IS NULL THEN 'source_not_selected'
            END
        ) AS drop_reason
    )
FROM step_map AS s
LEFT JOIN spec_sources AS p ON p.id = s.source_id
