-- Canonical, order-independent digest of the snapshot rows: each row is serialized as its columns
-- joined by U+001F and hashed with md5 (as a 128-bit number); the multiset of hashes is summarized by count, sums and XORs
-- of both 64-bit halves. The caller hashes this summary with SHA-256 (content_sha256).
WITH hashed AS (
    SELECT md5_number(concat_ws(chr(31),
        site, source_id, image_id, CAST("row" AS VARCHAR), CAST(col AS VARCHAR), coalesce(label_id, ''),
        benthic_attribute_id, coalesce(benthic_attribute_name, ''), growth_form_id, growth_form_name,
        feature_key, annotation_id, CAST(occurrence AS VARCHAR))) AS h
    FROM snapshot_rows
)
SELECT
    count(*) AS n,
    CAST(sum(CAST(h >> 64 AS HUGEINT)) AS VARCHAR) AS sum_upper,
    CAST(sum(CAST(h & CAST(18446744073709551615 AS UHUGEINT) AS HUGEINT)) AS VARCHAR) AS sum_lower,
    CAST(bit_xor(CAST(h >> 64 AS UBIGINT)) AS VARCHAR) AS xor_upper,
    CAST(bit_xor(CAST(h & CAST(18446744073709551615 AS UHUGEINT) AS UBIGINT)) AS VARCHAR) AS xor_lower
FROM hashed
