-- Step 7 when no annotation limit binds: every row that survived steps 1-6.
SELECT * EXCLUDE (drop_reason)
FROM step_features
WHERE drop_reason IS NULL
