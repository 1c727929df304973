-- Step 5, include or exclude (after rollups): exact (ba_id, gf_id) matches against spec_labels.
-- $label_mode is 'include' (keep only listed pairs), 'exclude' (drop listed pairs) or 'none'.
-- A row does not cover descendant BAs; gf_id '' means "no growth form".
SELECT
    s.* REPLACE (
        coalesce(
            s.drop_reason,
            CASE
                WHEN $label_mode = 'include' AND l.ba_id IS NULL THEN 'label_not_included'
                WHEN $label_mode = 'exclude' AND l.ba_id IS NOT NULL THEN 'label_excluded'
            END
        ) AS drop_reason
    )
FROM step_rollup AS s
LEFT JOIN spec_labels AS l ON l.ba_id = s.benthic_attribute_id AND l.gf_id = s.growth_form_id
