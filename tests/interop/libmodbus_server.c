/* A Modbus TCP server built on libmodbus (Debian libmodbus-dev), for the collector's interoperability tests.
 *
 * Usage: libmodbus_server PORT MAPFILE
 * MAPFILE, one entry a line:
 *   h ADDR VALUE      holding register (0-65535)
 *   i ADDR VALUE      input register
 *   c ADDR 0|1        coil
 *   d ADDR 0|1        discrete input
 *   hole ADDR         an unmapped register: any read of registers that covers it answers exception 2
 *   max N CODE        reads of more than N registers answer exception CODE (2 or 3), as many meters do
 * Addresses 0-999 exist. One client at a time (the collector keeps one connection); a new one is accepted
 * after the old one goes. Every request is logged on stdout as "fc start count ok" or "fc start count exc N",
 * flushed at once, so a test can see exactly what the collector sent. "ready" is printed once listening.
 */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE 1000
#define MAX_HOLES 64

static int holes[MAX_HOLES];
static int n_holes = 0;
static int max_regs = 125;
static int max_code = MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;

static int load_map(const char *path, modbus_mapping_t *map) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    char kind[8];
    int a, v;
    while (fscanf(f, "%7s %d", kind, &a) == 2) {
        if (strcmp(kind, "hole") == 0) {
            if (n_holes < MAX_HOLES) holes[n_holes++] = a;
            continue;
        }
        if (fscanf(f, "%d", &v) != 1 || a < 0 || a >= SIZE) {
            fprintf(stderr, "%s: bad line for %s %d\n", path, kind, a);
            fclose(f);
            return -1;
        }
        if (strcmp(kind, "h") == 0) map->tab_registers[a] = (uint16_t)v;
        else if (strcmp(kind, "i") == 0) map->tab_input_registers[a] = (uint16_t)v;
        else if (strcmp(kind, "c") == 0) map->tab_bits[a] = v ? 1 : 0;
        else if (strcmp(kind, "d") == 0) map->tab_input_bits[a] = v ? 1 : 0;
        else if (strcmp(kind, "max") == 0) { max_regs = a; max_code = v; }
        else {
            fprintf(stderr, "%s: unknown kind %s\n", path, kind);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

/* The exception this read must get (0: none), judged before libmodbus answers from the mapping. */
static int quirk(int fc, int start, int count) {
    if (fc != MODBUS_FC_READ_HOLDING_REGISTERS && fc != MODBUS_FC_READ_INPUT_REGISTERS) return 0;
    if (count > max_regs) return max_code;
    for (int k = 0; k < n_holes; k++)
        if (holes[k] >= start && holes[k] < start + count) return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    return 0;
}

static void serve(modbus_t *ctx, modbus_mapping_t *map) {
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    int header = modbus_get_header_length(ctx);
    for (;;) {
        int rc = modbus_receive(ctx, query);
        if (rc == 0) continue; /* a request for another unit id: ignored */
        if (rc < 0) return;   /* connection closed or broken */
        int fc = query[header];
        int start = (query[header + 1] << 8) | query[header + 2];
        int count = (query[header + 3] << 8) | query[header + 4];
        int code = quirk(fc, start, count);
        if (code) {
            printf("%d %d %d exc %d\n", fc, start, count, code);
            modbus_reply_exception(ctx, query, code);
        } else {
            printf("%d %d %d ok\n", fc, start, count);
            modbus_reply(ctx, query, rc, map);
        }
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT MAPFILE\n", argv[0]);
        return 2;
    }
    modbus_mapping_t *map = modbus_mapping_new(SIZE, SIZE, SIZE, SIZE);
    if (map == NULL || load_map(argv[2], map) != 0) return 1;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
    if (ctx == NULL) return 1;
    int server = modbus_tcp_listen(ctx, 1);
    if (server < 0) {
        fprintf(stderr, "listen: %s\n", modbus_strerror(errno));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        if (modbus_tcp_accept(ctx, &server) < 0) return 1;
        serve(ctx, map);
        modbus_close(ctx);
    }
}
