-- The names of every benthic attribute ('ba') and growth form ('gf') of the lake's taxonomy, by id: a
-- model's class keys ("{ba_id}::{gf_id}") are shown beside these names in predictions and reports. Run
-- over a snapshot's pinned table versions (or the current ones).
SELECT 'ba' AS kind, id, name FROM benthic_attributes
UNION ALL
SELECT 'gf' AS kind, id, name FROM growth_forms
ORDER BY kind, id
