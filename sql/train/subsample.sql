-- Class-aware subsampling of the TRAIN set (after the split; ref and val keep their real class mix).
-- Each class keeps its first `quota` rows in the order of md5(annotation_id), ties broken by
-- annotation_id (a total order): deterministic, independent of row order and of the seed, spread over
-- sources and sites (ordering by site, source and image instead keeps the lexically first sources),
-- and nested (a bigger quota keeps a superset). The quotas are computed by the caller from the class
-- counts (mermaid_train.split.subsample). Inputs: train(pos, class_key, annotation_id) = the train rows
-- with their packed row index; quotas(class_key, quota).
SELECT t.pos
FROM train AS t
JOIN quotas AS q ON q.class_key = t.class_key
WHERE q.quota > 0
QUALIFY row_number() OVER (PARTITION BY t.class_key ORDER BY md5(t.annotation_id), t.annotation_id) <= q.quota
ORDER BY t.pos
