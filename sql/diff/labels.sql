-- `snapshot diff`: the classes whose row counts differ between snapshot A (view `a`) and B (view `b`),
-- with the class's name beside its key ("{ba_id}::{gf_id}"; the rows carry the taxonomy names they were
-- built with: "BA / GF", or the BA name without a growth form). Largest change first; ties by key, so
-- the order is total.
-- Not part of a build (sql/snapshot and sql/views are): no snapshot ID covers this file.
WITH rows_ab AS (
    SELECT 'a' AS side, benthic_attribute_id || '::' || growth_form_id AS class_key,
           benthic_attribute_name, growth_form_name FROM a
    UNION ALL
    SELECT 'b', benthic_attribute_id || '::' || growth_form_id, benthic_attribute_name, growth_form_name FROM b
),
counts AS (
    SELECT class_key,
           min(coalesce(benthic_attribute_name, '')) AS ba_name,
           min(coalesce(growth_form_name, '')) AS gf_name,
           count(*) FILTER (WHERE side = 'a') AS a,
           count(*) FILTER (WHERE side = 'b') AS b
    FROM rows_ab
    GROUP BY class_key
)
SELECT CASE WHEN ba_name = '' THEN class_key
            WHEN gf_name = '' THEN ba_name
            ELSE ba_name || ' / ' || gf_name END AS name,
       class_key, a, b, b - a AS delta
FROM counts
WHERE a <> b
ORDER BY abs(b - a) DESC, class_key
