-- Step 3, drop growth forms: with $drop_growthforms every growth form becomes '' (before rollups).
SELECT
    s.* REPLACE (CASE WHEN $drop_growthforms THEN '' ELSE s.growth_form_id END AS growth_form_id)
FROM step_sources AS s
