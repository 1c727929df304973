-- bagf_counts.csv: annotations per (benthic attribute, growth form) class in the snapshot.
SELECT
    benthic_attribute_id,
    any_value(benthic_attribute_name) AS benthic_attribute_name,
    growth_form_id,
    any_value(growth_form_name) AS growth_form_name,
    benthic_attribute_id || '::' || growth_form_id AS class_key,
    count(*) AS annotations
FROM snapshot_rows
GROUP BY benthic_attribute_id, growth_form_id
ORDER BY annotations DESC, benthic_attribute_id, growth_form_id
