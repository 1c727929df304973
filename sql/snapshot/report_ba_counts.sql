-- ba_counts.csv: annotations per benthic attribute in the snapshot.
SELECT benthic_attribute_id, any_value(benthic_attribute_name) AS benthic_attribute_name, count(*) AS annotations
FROM snapshot_rows
GROUP BY benthic_attribute_id
ORDER BY annotations DESC, benthic_attribute_id
