-- The input of steps 1-5: one row per distinct (site, source, label id, BA, GF) of the pinned lake,
-- with its number of annotations. Steps 1-5 decide on exactly these columns, so they run once per
-- group (tens of thousands) instead of once per annotation (tens of millions); step 6 joins the kept
-- groups back to their annotations. The stored columns keep their NULLs (label_id is NULL for MERMAID,
-- BA/GF are NULL for CoralNet), and step 6 matches them with IS NOT DISTINCT FROM.
SELECT
    site,
    source_id,
    label_id AS stored_label_id,
    benthic_attribute_id AS stored_benthic_attribute_id,
    growth_form_id AS stored_growth_form_id,
    count(*) AS annotations
FROM annotations_stored
GROUP BY ALL
