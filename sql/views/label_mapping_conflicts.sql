-- label_mapping_conflicts: CoralNet label ids that the mapping lists with more than one BA/GF pair,
-- each listed pair with whether the resolution rule chose it.
SELECT
    m.provider_id AS label_id,
    m.provider_label,
    m.benthic_attribute_id,
    m.growth_form_id,
    m.mapping_id,
    (m.mapping_id = r.mapping_id) AS chosen
FROM label_mappings AS m
JOIN label_mapping_resolved AS r ON r.label_id = m.provider_id
WHERE m.provider_id IN (
    SELECT provider_id FROM label_mappings
    GROUP BY provider_id
    HAVING count(DISTINCT (benthic_attribute_id, growth_form_id)) > 1
)
ORDER BY CAST(m.provider_id AS BIGINT), chosen DESC, m.mapping_id
