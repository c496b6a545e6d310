/* The dataset splits every stream carries: train, val, test. */
#ifndef DSK_CORE_SPLIT_H
#define DSK_CORE_SPLIT_H

#define DSK_SPLITS 3

extern const char *const dsk_split_names[DSK_SPLITS];

/* The split's number, or -1 when name is not train, val or test. */
int dsk_split_parse(const char *name);

#endif
