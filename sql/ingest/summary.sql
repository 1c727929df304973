-- Lake-wide figures printed at the end of `mermaid-data ingest`.
WITH per_image AS (
    SELECT DISTINCT site, source_id, image_id FROM annotations_stored
),
missing AS (
    SELECT count(*) AS n
    FROM per_image AS i
    ANTI JOIN features AS f USING (site, source_id, image_id)
)
SELECT
    (SELECT count(*) FROM annotations_stored) AS annotations,
    (SELECT count(*) FILTER (WHERE site = 'mermaid') FROM annotations_stored) AS mermaid_annotations,
    (SELECT count(*) FILTER (WHERE site = 'coralnet') FROM annotations_stored) AS coralnet_annotations,
    (SELECT count(DISTINCT (site, source_id)) FROM annotations_stored) AS sources,
    (SELECT count(*) FROM per_image) AS images,
    (SELECT count(*) FROM annotations_stored WHERE occurrence > 1) AS duplicate_points,
    (SELECT count(*) FROM unmapped_annotations) AS unmapped_annotations,
    (SELECT count(DISTINCT label_id) FROM unmapped_annotations) AS unmapped_labels,
    (SELECT count(*) FROM label_mapping_conflicts WHERE chosen) AS conflicting_label_ids,
    (SELECT n FROM missing) AS images_missing_features,
    (SELECT count(*) FROM features) AS feature_objects
