#include "core/split.h"

#include <string.h>

const char *const dsk_split_names[DSK_SPLITS] = {"train", "val", "test"};

int dsk_split_parse(const char *name)
{
    for (int s = 0; s < DSK_SPLITS; s++)
        if (strcmp(name, dsk_split_names[s]) == 0)
            return s;
    return -1;
}
