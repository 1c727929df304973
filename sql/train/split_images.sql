-- Train/ref/val split by image: one stable hash per distinct image (never Python's salted hash()).
-- md5_number_upper = the first 8 bytes of md5("<seed>|<site>|<source_id>|<image_id>") as a little-endian
-- uint64; the caller orders each stratum's images by it (split/assign.py: exact set sizes, by class).
-- $seed is the split seed (text). Input view: images(site, source_id, image_id), distinct.
SELECT
    site,
    source_id,
    image_id,
    md5_number_upper($seed || '|' || site || '|' || source_id || '|' || image_id) AS h
FROM images
