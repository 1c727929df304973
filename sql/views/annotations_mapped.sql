-- annotations_mapped: every annotation with a MERMAID benthic attribute and growth form ('' = none).
-- MERMAID rows keep their own ids; CoralNet rows take them from `label_mapping_resolved`, so a new
-- mapping never needs a re-ingest. CoralNet rows whose label id has no mapping are left out (see
-- `unmapped_annotations`).
SELECT * EXCLUDE (mapped)
FROM annotations_labelled
WHERE mapped
