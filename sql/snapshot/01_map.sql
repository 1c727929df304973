-- Step 1, map: every annotation with its MERMAID BA/GF (view `annotations_labelled`); CoralNet rows
-- whose label id has no mapping are marked 'unmapped_label'. `drop_reason` keeps the first step that
-- drops a row; later steps only ever fill it when it is still NULL.
SELECT
    site,
    source_id,
    image_id,
    "row",
    col,
    label_id,
    benthic_attribute_id,
    growth_form_id,
    feature_key,
    annotation_id,
    occurrence,
    CASE WHEN NOT mapped THEN 'unmapped_label' END AS drop_reason
FROM annotations_labelled
