-- label_mapping.csv: the mapping rows used by the snapshot's CoralNet annotations.
SELECT m.label_id, m.provider_label, m.benthic_attribute_id, m.benthic_attribute_name,
       m.growth_form_id, m.growth_form_name, m.mapping_id, s.annotations
FROM (
    SELECT label_id, count(*) AS annotations FROM snapshot_rows WHERE site = 'coralnet' GROUP BY label_id
) AS s
JOIN label_mapping_resolved AS m ON m.label_id = s.label_id
ORDER BY CAST(m.label_id AS BIGINT)
