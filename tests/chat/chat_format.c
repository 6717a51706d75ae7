/* Prints a conversation as bllm formats it, for tests/chat/test_chat.py:
 *   chat-format MODEL.stb|- STYLE|auto MESSAGES.json ADD_ASSISTANT(0|1)
 * MESSAGES.json: [{"role": ..., "content": ...}, ...]. With "-" instead of
 * a model there is no template (no default system prompt); "auto" takes
 * the model template's family. Also prints, to stderr, the style used. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: chat-format MODEL.stb|- STYLE|auto MESSAGES.json 0|1\n");
        return 2;
    }
    bllm_model *m = NULL;
    const char *tmpl = NULL;
    if (strcmp(argv[1], "-")) {
        if (bllm_model_load(argv[1], NULL, &m)) {
            fprintf(stderr, "chat-format: %s\n", bllm_last_error());
            return 1;
        }
        tmpl = bllm_model_chat_template(m);
    }
    bllm_chat_style style = bllm_chat_style_of(tmpl);
    if (strcmp(argv[2], "auto") && !bllm_chat_style_from_name(argv[2], &style)) {
        fprintf(stderr, "chat-format: unknown style %s\n", argv[2]);
        return 2;
    }
    FILE *f = fopen(argv[3], "rb");
    if (!f)
        return 2;
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    cJSON *j = cJSON_Parse(buf);
    int n = cJSON_GetArraySize(j);
    bllm_chat_message *msgs = calloc((size_t)n + 1, sizeof *msgs);
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_GetArrayItem(j, i);
        msgs[i].role = cJSON_GetStringValue(cJSON_GetObjectItem(e, "role"));
        msgs[i].content = cJSON_GetStringValue(cJSON_GetObjectItem(e, "content"));
    }
    char *out = NULL;
    if (bllm_chat_format(style, tmpl, msgs, n, atoi(argv[4]) != 0, &out)) {
        fprintf(stderr, "chat-format: %s\n", bllm_last_error());
        return 1;
    }
    fputs(out, stdout);
    fprintf(stderr, "style %s\n", bllm_chat_style_name(style));
    free(out);
    free(msgs);
    cJSON_Delete(j);
    bllm_model_free(m);
    return 0;
}
