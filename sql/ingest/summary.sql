-- Lake-wide figures printed at the end of `mermaid-data ingest`. Per-source counts come from the
-- `sources` table (each source's rows, images and duplicate points, recorded when it was ingested);
-- the label and feature figures read only the columns they need.
WITH src AS (
    SELECT * FROM sources WHERE site IN ('mermaid', 'coralnet')
),
label_counts AS (
    SELECT label_id, count(*) AS n
    FROM annotations_stored
    WHERE site = 'coralnet'
    GROUP BY label_id
),
unmapped AS (
    SELECT * FROM label_counts ANTI JOIN label_mapping_resolved USING (label_id)
),
per_image AS (
    SELECT DISTINCT site, source_id, image_id FROM annotations_stored
)
SELECT
    (SELECT sum(row_count) FROM src) AS annotations,
    (SELECT sum(row_count) FILTER (WHERE site = 'mermaid') FROM src) AS mermaid_annotations,
    (SELECT sum(row_count) FILTER (WHERE site = 'coralnet') FROM src) AS coralnet_annotations,
    (SELECT count(*) FILTER (WHERE row_count > 0) FROM src) AS sources,
    (SELECT sum(image_count) FROM src) AS images,
    (SELECT sum(duplicate_points) FROM src) AS duplicate_points,
    (SELECT sum(n) FROM unmapped) AS unmapped_annotations,
    (SELECT count(*) FROM unmapped) AS unmapped_labels,
    (SELECT count(*) FROM label_mapping_conflicts WHERE chosen) AS conflicting_label_ids,
    (SELECT count(*) FROM per_image ANTI JOIN features USING (site, source_id, image_id)) AS images_missing_features,
    (SELECT count(*) FROM features) AS feature_objects
