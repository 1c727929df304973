-- `snapshot diff`: rows added, removed and relabelled between snapshot A (view `a`) and B (view `b`),
-- matched on annotation_id (stable across builds).
-- Not part of a build (sql/snapshot and sql/views are): no snapshot ID covers this file.
SELECT count(*) FILTER (WHERE a.annotation_id IS NULL) AS added,
       count(*) FILTER (WHERE b.annotation_id IS NULL) AS removed,
       count(*) FILTER (WHERE a.annotation_id IS NOT NULL AND b.annotation_id IS NOT NULL
           AND (a.benthic_attribute_id <> b.benthic_attribute_id OR a.growth_form_id <> b.growth_form_id)) AS relabelled
FROM a FULL OUTER JOIN b ON a.annotation_id = b.annotation_id
