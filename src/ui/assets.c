/*
 * assets.c - finding an embedded dashboard file by its name.
 */
#include <string.h>

#include "ui/assets.h"

static const char *content_type(const char *name)
{
  static const struct {
    const char *ext, *ctype;
  } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
  };
  size_t n = strlen(name);

  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    size_t e = strlen(types[i].ext);
    if (n > e && strcmp(name + n - e, types[i].ext) == 0)
      return types[i].ctype;
  }
  return "application/octet-stream";
}

const struct ctkn__ui_file *ctkn__ui_file(const char *name, const char **ctype)
{
  for (size_t i = 0; i < ctkn__ui_nfiles; i++) {
    if (strcmp(ctkn__ui_files[i].name, name) == 0) {
      *ctype = content_type(name);
      return &ctkn__ui_files[i];
    }
  }
  return NULL;
}
