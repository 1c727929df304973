-- unmapped_annotations: CoralNet annotations whose label id the mapping does not know.
SELECT a.*
FROM annotations AS a
ANTI JOIN label_mapping_resolved AS m ON a.label_id = m.label_id
WHERE a.site = 'coralnet'
