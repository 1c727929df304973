-- Target BA ids of `spec rollups --to targets.csv` (table spec_targets(ba_id)) that the pinned taxonomy
-- does not know: an error (a typo would silently roll nothing up to it), listed in id order.
SELECT t.ba_id
FROM spec_targets AS t
ANTI JOIN benthic_attributes AS b ON b.id = t.ba_id
ORDER BY t.ba_id
