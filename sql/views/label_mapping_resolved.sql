-- label_mapping_resolved: exactly one (benthic attribute, growth form) per CoralNet label id.
-- The MERMAID API may list one label id twice with different BA/GF pairs. Rule (documented in
-- docs/lake.md): the pair that sorts first by (benthic_attribute_id, growth_form_id, mapping_id) wins;
-- the others are reported by `label_mapping_conflicts`. Rows are never fanned out.
SELECT
    provider_id AS label_id,
    provider_label,
    benthic_attribute_id,
    benthic_attribute_name,
    growth_form_id,
    growth_form_name,
    mapping_id
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY provider_id ORDER BY benthic_attribute_id, growth_form_id, mapping_id
        ) AS choice
    FROM label_mappings
)
WHERE choice = 1
