-- Step 4, rollup: an exact (BA, GF) match on spec_rollups(from_ba_id, from_gf_id) becomes
-- (to_ba_id, to_gf_id); '' means no growth form (never "any"); pairs without a rule pass through.
-- One pass: chains (A->B, B->C) are not followed (a warning in the manifest says so).
SELECT
    s.* REPLACE (
        coalesce(r.to_ba_id, s.benthic_attribute_id) AS benthic_attribute_id,
        CASE WHEN r.from_ba_id IS NULL THEN s.growth_form_id ELSE r.to_gf_id END AS growth_form_id
    )
FROM step_drop_growthforms AS s
LEFT JOIN spec_rollups AS r
    ON r.from_ba_id = s.benthic_attribute_id AND r.from_gf_id = s.growth_form_id
