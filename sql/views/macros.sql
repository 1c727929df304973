-- Derived keys, shared by the `annotations` view and the snapshot steps (which build them only for
-- the rows they write: building two strings for each of 20M+ rows costs more than any join).
-- `feature_key` is relative to the source's root, so digests never depend on where the lake lives; a
-- CoralNet `annotation_id` is stable: source, image, row, col and occurrence among duplicates.
-- (`concat` builds each string in one allocation; a chain of `||` takes about twice as long.)
CREATE OR REPLACE MACRO feature_key_of(site, source_id, image_id) AS
    CASE
        WHEN site = 'mermaid' THEN concat(image_id, '_featurevector')
        ELSE concat('s', source_id, '/features/i', image_id, '.featurevector')
    END;
CREATE OR REPLACE MACRO annotation_id_of(stored_annotation_id, source_id, image_id, "row", col, occurrence) AS
    coalesce(
        stored_annotation_id,
        concat('cn-s', source_id, '-i', image_id, '-r', "row", '-c', col, '-', occurrence)
    );
