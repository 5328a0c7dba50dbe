/* Round-trips punktfunk/1 frames through the C ABI, as a native client would use it.
 *
 * Seals frames of several sizes (up to 3 MB), loses datagrams within the FEC budget and beyond
 * it, reorders and duplicates some, feeds the reassembler on a fake clock, and checks every
 * frame comes out byte-identical, recovered or lost as expected. Then the control codec, the
 * version and the error paths. Exits non-zero on the first failure.
 *
 * Includes only the checked-in header; tests/c_harness.rs builds and runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "punktfunk.h"

#define MAX_FRAMES 64

static int failures;

#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                         \
      fprintf(stderr, "\n");                                                \
      failures++;                                                           \
      return 1;                                                             \
    }                                                                       \
  } while (0)

#define RUN(step)                          \
  do {                                     \
    if (step) {                            \
      fprintf(stderr, "FAILED: %s\n", #step); \
      return 1;                            \
    }                                      \
  } while (0)

enum outcome { PENDING = 0, WHOLE, RECOVERED, LOST };

static const uint8_t KEY[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t SALT[4] = {0xa1, 0xb2, 0xc3, 0xd4};

struct harness {
  PunktfunkSealer *sealer;
  PunktfunkReassembler *reassembler;
  uint64_t now_ns;
  uint32_t next_index;
  enum outcome expected[MAX_FRAMES];
  size_t size[MAX_FRAMES];
  int seen[MAX_FRAMES];
  uint64_t completed, recovered, lost;
};

/* Deterministic frame content: xorshift seeded by the index. */
static void fill_frame(uint8_t *buf, size_t len, uint32_t index) {
  uint32_t x = index * 0x9E3779B9u | 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (uint8_t)x;
  }
}

/* Takes every event out and checks it against what was expected. */
static int drain(struct harness *h) {
  PunktfunkEvent ev;
  memset(&ev, 0, sizeof ev);
  ev.size = sizeof ev;
  int rc;
  while ((rc = punktfunk_reassembler_poll_event(h->reassembler, &ev)) == 1) {
    if (ev.kind == PUNKTFUNK_EVENT_LOST) {
      for (uint32_t i = ev.index; i <= ev.last_index; i++) {
        CHECK(i < h->next_index, "lost index %u not sent yet", i);
        CHECK(h->expected[i] == LOST, "frame %u reported lost, expected outcome %d", i,
              h->expected[i]);
        CHECK(!h->seen[i], "frame %u reported twice", i);
        h->seen[i] = 1;
        h->lost++;
      }
      continue;
    }
    CHECK(ev.kind == PUNKTFUNK_EVENT_FRAME, "event kind %u", ev.kind);
    uint32_t i = ev.index;
    CHECK(i < h->next_index && ev.last_index == i, "frame index %u", i);
    CHECK(!h->seen[i], "frame %u delivered twice", i);
    h->seen[i] = 1;
    CHECK(h->expected[i] == WHOLE || h->expected[i] == RECOVERED,
          "frame %u delivered, expected outcome %d", i, h->expected[i]);
    CHECK(ev.recovered == (h->expected[i] == RECOVERED), "frame %u recovered=%u", i,
          ev.recovered);
    CHECK(ev.pts_ns == 1000000ull * i, "frame %u pts %llu", i, (unsigned long long)ev.pts_ns);
    CHECK(ev.keyframe == (i % 8 == 0), "frame %u keyframe=%u", i, ev.keyframe);
    CHECK(ev.len == h->size[i], "frame %u of %zu bytes, expected %zu", i, ev.len, h->size[i]);
    if (ev.len > 0) {
      uint8_t *want = malloc(ev.len);
      CHECK(want != NULL, "out of memory");
      fill_frame(want, ev.len, i);
      int same = memcmp(want, ev.data, ev.len) == 0;
      free(want);
      CHECK(same, "frame %u bytes differ", i);
    }
    h->completed++;
    if (ev.recovered) h->recovered++;
  }
  CHECK(rc == 0, "poll_event: %s", punktfunk_strerror(rc));
  return 0;
}

/* Pushes one datagram; filed datagrams return 0. */
static int push(struct harness *h, const uint8_t *d, size_t len, int32_t want) {
  int32_t rc = punktfunk_reassembler_push(h->reassembler, h->now_ns, d, len);
  CHECK(rc == want, "push returned %d (%s), expected %d", rc, punktfunk_strerror(rc), want);
  return 0;
}

/* Which datagrams of a frame to drop or reorder. */
enum pattern {
  NONE,           /* all datagrams, in order */
  SPREAD_BUDGET,  /* drop exactly `recovery` datagrams spread over the frame */
  BURST_BUDGET,   /* drop `recovery` consecutive datagrams at the start */
  BEYOND_BUDGET,  /* drop `recovery + 1` datagrams */
  REVERSED,       /* all datagrams, last first */
  SWAPPED,        /* neighbours swapped, one data shard dropped, one datagram twice */
};

/* Seals frame `next_index` of `size` bytes and feeds it with `pattern`. */
static int send_frame(struct harness *h, size_t size, uint8_t fec_percent, enum pattern pattern) {
  uint32_t index = h->next_index++;
  CHECK(index < MAX_FRAMES, "too many frames");
  uint8_t *frame = malloc(size ? size : 1);
  CHECK(frame != NULL, "out of memory");
  fill_frame(frame, size, index);
  h->size[index] = size;

  PunktfunkDatagrams out;
  memset(&out, 0, sizeof out);
  out.size = sizeof out;
  int32_t rc = punktfunk_sealer_seal_frame(h->sealer, frame, size, index, 1000000ull * index,
                                           index % 8 == 0, fec_percent, &out);
  free(frame);
  CHECK(rc == PUNKTFUNK_OK, "seal_frame: %s", punktfunk_strerror(rc));
  CHECK(out.count == (uint32_t)out.data_shards + out.recovery_shards, "count %u", out.count);
  CHECK(out.datagram_len == 56u + out.shard_bytes, "datagram_len %zu", out.datagram_len);

  uint32_t n = out.count, r = out.recovery_shards;
  char *drop = calloc(n, 1);
  uint32_t *order = malloc(n * sizeof *order);
  CHECK(drop && order, "out of memory");
  for (uint32_t i = 0; i < n; i++) order[i] = i;
  uint32_t dropped = 0;
  switch (pattern) {
    case NONE:
      h->expected[index] = WHOLE;
      break;
    case SPREAD_BUDGET:
    case BEYOND_BUDGET: {
      uint32_t want = pattern == SPREAD_BUDGET ? r : r + 1;
      uint32_t step = n / want;
      for (uint32_t i = 1; dropped < want; i += step, dropped++) drop[i % n] = 1;
      h->expected[index] = pattern == SPREAD_BUDGET ? RECOVERED : LOST;
      break;
    }
    case BURST_BUDGET:
      for (uint32_t i = 0; i < r; i++, dropped++) drop[i] = 1;
      h->expected[index] = RECOVERED;
      break;
    case REVERSED:
      for (uint32_t i = 0; i < n; i++) order[i] = n - 1 - i;
      /* Recovery shards arrive first: the frame completes as soon as enough are in, which
       * may need decoding. Whether it does depends on the shard counts; accept either below. */
      h->expected[index] = r >= 1 ? RECOVERED : WHOLE;
      break;
    case SWAPPED:
      for (uint32_t i = 0; i + 1 < n; i += 2) {
        order[i] = i + 1;
        order[i + 1] = i;
      }
      drop[0] = 1;
      h->expected[index] = RECOVERED;
      break;
  }

  for (uint32_t k = 0; k < n; k++) {
    uint32_t i = order[k];
    if (drop[i]) continue;
    const uint8_t *d = out.data + (size_t)i * out.datagram_len;
    RUN(push(h, d, out.datagram_len, PUNKTFUNK_OK));
    if (pattern == SWAPPED && k == 3) {
      /* The same datagram again: the replay window refuses it. */
      RUN(push(h, d, out.datagram_len, PUNKTFUNK_DROP_REPLAY));
    }
  }
  free(drop);
  free(order);
  h->now_ns += 1000000; /* 1 ms per frame */
  return drain(h);
}

/* Lets every wait run out and checks that each frame sent was accounted for once. */
static int settle(struct harness *h) {
  uint64_t deadline;
  int rc;
  while ((rc = punktfunk_reassembler_poll_timeout_ns(h->reassembler, &deadline)) == 1) {
    CHECK(deadline >= h->now_ns - 200000000ull, "deadline %llu far behind now",
          (unsigned long long)deadline);
    if (deadline > h->now_ns) h->now_ns = deadline;
    CHECK(punktfunk_reassembler_handle_timeout(h->reassembler, h->now_ns) == PUNKTFUNK_OK,
          "handle_timeout");
    RUN(drain(h));
  }
  CHECK(rc == 0, "poll_timeout: %s", punktfunk_strerror(rc));
  for (uint32_t i = 0; i < h->next_index; i++) {
    CHECK(h->seen[i], "frame %u (outcome %d) never reported", i, h->expected[i]);
  }
  return 0;
}

static int data_plane(void) {
  struct harness h;
  memset(&h, 0, sizeof h);
  h.now_ns = 5000000000ull; /* an arbitrary monotonic reading */

  PunktfunkReassemblerConfig cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.size = sizeof cfg;
  CHECK(punktfunk_reassembler_config_default(&cfg) == PUNKTFUNK_OK, "config_default");
  CHECK(cfg.size == sizeof cfg && cfg.plane == PUNKTFUNK_PLANE_VIDEO, "default plane");
  CHECK(cfg.reorder_wait_us == 15000 && cfg.max_frame_bytes == 64ull << 20, "defaults");
  cfg.reorder_wait_us = 5000;
  CHECK(punktfunk_reassembler_new(KEY, SALT, &cfg, &h.reassembler) == PUNKTFUNK_OK, "new");
  CHECK(punktfunk_sealer_new(KEY, SALT, PUNKTFUNK_PLANE_VIDEO, PUNKTFUNK_DEFAULT_SHARD_PAYLOAD,
                             &h.sealer) == PUNKTFUNK_OK,
        "sealer_new");

  /* Whole frames of several sizes, with and without FEC. */
  static const size_t sizes[] = {0, 1, 1407, 1408, 1409, 100000, 500000, 3000000};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    RUN(send_frame(&h, sizes[k], k % 2 ? 10 : 0, NONE));
  }
  /* Loss within the recovery budget: spread out, and one burst. */
  RUN(send_frame(&h, 100000, 10, SPREAD_BUDGET));
  RUN(send_frame(&h, 500000, 20, SPREAD_BUDGET));
  RUN(send_frame(&h, 3000000, 10, SPREAD_BUDGET));
  RUN(send_frame(&h, 2000000, 5, BURST_BUDGET));
  /* One datagram beyond the budget: lost, and the frames after it still flow. */
  RUN(send_frame(&h, 500000, 10, BEYOND_BUDGET));
  RUN(send_frame(&h, 3000000, 10, BEYOND_BUDGET));
  RUN(send_frame(&h, 200000, 10, NONE));
  /* Reordering and a replayed datagram. */
  RUN(send_frame(&h, 300000, 10, SWAPPED));
  RUN(send_frame(&h, 50000, 20, NONE));
  RUN(send_frame(&h, 400000, 10, REVERSED));
  RUN(send_frame(&h, 1000000, 10, BEYOND_BUDGET));
  RUN(send_frame(&h, 1000000, 10, BURST_BUDGET));

  /* A tampered datagram is refused and changes nothing. */
  {
    uint32_t index = h.next_index++;
    uint8_t frame[3000];
    fill_frame(frame, sizeof frame, index);
    h.size[index] = sizeof frame;
    h.expected[index] = WHOLE;
    PunktfunkDatagrams out;
    memset(&out, 0, sizeof out);
    out.size = sizeof out;
    CHECK(punktfunk_sealer_seal_frame(h.sealer, frame, sizeof frame, index, 1000000ull * index,
                                      index % 8 == 0, 0, &out) == PUNKTFUNK_OK,
          "seal");
    uint8_t *bad = malloc(out.datagram_len);
    CHECK(bad != NULL, "out of memory");
    memcpy(bad, out.data, out.datagram_len);
    bad[out.datagram_len - 1] ^= 0x55;
    RUN(push(&h, bad, out.datagram_len, PUNKTFUNK_DROP_BAD_TAG));
    RUN(push(&h, bad, 10, PUNKTFUNK_DROP_MALFORMED));
    free(bad);
    for (uint32_t i = 0; i < out.count; i++) {
      RUN(push(&h, out.data + (size_t)i * out.datagram_len, out.datagram_len, PUNKTFUNK_OK));
    }
    RUN(drain(&h));
  }
  RUN(settle(&h));

  PunktfunkStats stats;
  memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats;
  CHECK(punktfunk_reassembler_stats(h.reassembler, &stats) == PUNKTFUNK_OK, "stats");
  CHECK(stats.frames_completed == h.completed, "completed %llu vs %llu",
        (unsigned long long)stats.frames_completed, (unsigned long long)h.completed);
  CHECK(stats.frames_recovered == h.recovered, "recovered %llu vs %llu",
        (unsigned long long)stats.frames_recovered, (unsigned long long)h.recovered);
  CHECK(stats.frames_lost == h.lost && h.lost == 3, "lost %llu vs %llu",
        (unsigned long long)stats.frames_lost, (unsigned long long)h.lost);
  CHECK(stats.dropped_bad_tag == 1 && stats.dropped_replay == 1 && stats.dropped_malformed == 1,
        "drops %llu %llu %llu", (unsigned long long)stats.dropped_bad_tag,
        (unsigned long long)stats.dropped_replay, (unsigned long long)stats.dropped_malformed);
  printf("data plane: %u frames, %llu complete (%llu recovered), %llu lost, %llu datagrams\n",
         h.next_index, (unsigned long long)h.completed, (unsigned long long)h.recovered,
         (unsigned long long)h.lost, (unsigned long long)stats.datagrams);

  punktfunk_sealer_free(h.sealer);
  punktfunk_reassembler_free(h.reassembler);
  return 0;
}

/* Client messages encode; a decoder hands them back with their bodies. */
static int control(void) {
  uint8_t stream[1024];
  size_t len = 0, n = 0;

  static const char name[] = "living room";
  PunktfunkHello hello;
  memset(&hello, 0, sizeof hello);
  hello.size = sizeof hello;
  hello.mode.width = 3840;
  hello.mode.height = 2160;
  hello.mode.refresh_mhz = 120000;
  hello.bitrate_kbps = 150000;
  hello.client_name = (const uint8_t *)name;
  hello.client_name_len = strlen(name);
  hello.max_shard_payload = PUNKTFUNK_DEFAULT_SHARD_PAYLOAD;
  hello.codecs = 2;
  hello.audio_channels = 2;
  CHECK(punktfunk_encode_hello(&hello, stream, 3, &n) == PUNKTFUNK_ERR_BUFFER_TOO_SMALL,
        "small buffer");
  CHECK(n > 3, "needed length %zu", n);
  CHECK(punktfunk_encode_hello(&hello, stream, sizeof stream, &n) == PUNKTFUNK_OK, "hello");
  len += n;
  CHECK(punktfunk_encode_start(47999, stream + len, sizeof stream - len, &n) == 0, "start");
  len += n;
  PunktfunkMode mode = {1920, 1080, 60000};
  CHECK(punktfunk_encode_reconfigure(&mode, stream + len, sizeof stream - len, &n) == 0, "reconf");
  len += n;
  CHECK(punktfunk_encode_request_keyframe(stream + len, sizeof stream - len, &n) == 0, "idr");
  len += n;
  CHECK(punktfunk_encode_loss_report(1500, 2, 7, stream + len, sizeof stream - len, &n) == 0,
        "loss");
  len += n;
  CHECK(punktfunk_encode_set_bitrate(80000, stream + len, sizeof stream - len, &n) == 0, "rate");
  len += n;
  CHECK(punktfunk_encode_clock_probe(123456789, stream + len, sizeof stream - len, &n) == 0,
        "probe");
  len += n;
  static const char reason[] = "user quit";
  CHECK(punktfunk_encode_close(PUNKTFUNK_CLOSE_QUIT_STOP_APP, (const uint8_t *)reason,
                               strlen(reason), stream + len, sizeof stream - len, &n) == 0,
        "close");
  len += n;
  static const uint8_t not_utf8[] = {0xff, 0xfe};
  CHECK(punktfunk_encode_close(0, not_utf8, 2, stream + len, sizeof stream - len, &n) ==
            PUNKTFUNK_ERR_INVALID_ARGUMENT,
        "close with bad utf-8");

  PunktfunkControlDecoder *dec = NULL;
  CHECK(punktfunk_control_decoder_new(&dec) == PUNKTFUNK_OK, "decoder_new");
  /* In uneven pieces. */
  for (size_t at = 0; at < len; at += 7) {
    size_t piece = len - at < 7 ? len - at : 7;
    CHECK(punktfunk_control_decoder_push(dec, stream + at, piece) == 0, "push");
  }
  static const uint32_t kinds[] = {PUNKTFUNK_MSG_HELLO,       PUNKTFUNK_MSG_START,
                                   PUNKTFUNK_MSG_RECONFIGURE, PUNKTFUNK_MSG_REQUEST_KEYFRAME,
                                   PUNKTFUNK_MSG_LOSS_REPORT, PUNKTFUNK_MSG_SET_BITRATE,
                                   PUNKTFUNK_MSG_CLOCK_PROBE, PUNKTFUNK_MSG_CLOSE};
  PunktfunkControlMessage m;
  memset(&m, 0, sizeof m);
  m.size = sizeof m;
  size_t at = 0;
  for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
    CHECK(punktfunk_control_decoder_poll(dec, &m) == 1, "message %zu", k);
    CHECK(m.kind == kinds[k], "message %zu of kind %u", k, m.kind);
    size_t body_len = stream[at] | (size_t)stream[at + 1] << 8;
    CHECK(m.body_len == body_len && memcmp(m.body, stream + at + 2, body_len) == 0,
          "body of message %zu", k);
    at += 2 + body_len;
  }
  CHECK(m.close_code == PUNKTFUNK_CLOSE_QUIT_STOP_APP, "close code %u", m.close_code);
  CHECK(m.text_len == strlen(reason) && strcmp(m.text, reason) == 0, "close reason");
  CHECK(punktfunk_control_decoder_poll(dec, &m) == 0, "no more messages");

  /* A message whose fields do not decode is skipped; a zero length breaks the stream. */
  static const uint8_t truncated[] = {3, 0, PUNKTFUNK_MSG_CLOCK_ECHO, 1, 2};
  CHECK(punktfunk_control_decoder_push(dec, truncated, sizeof truncated) == 0, "push");
  CHECK(punktfunk_control_decoder_poll(dec, &m) == PUNKTFUNK_ERR_CONTROL_MESSAGE, "truncated");
  CHECK(m.kind == PUNKTFUNK_MSG_CLOCK_ECHO && m.body_len == 3, "truncated message's body");
  static const uint8_t empty[] = {0, 0};
  CHECK(punktfunk_control_decoder_push(dec, empty, 2) == 0, "push");
  CHECK(punktfunk_control_decoder_poll(dec, &m) == PUNKTFUNK_ERR_CONTROL_STREAM, "broken");
  CHECK(punktfunk_control_decoder_push(dec, empty, 2) == PUNKTFUNK_ERR_CONTROL_STREAM, "stays");
  punktfunk_control_decoder_free(dec);
  printf("control: %zu messages round-tripped\n", sizeof kinds / sizeof *kinds);
  return 0;
}

static int errors(void) {
  uint32_t v = punktfunk_abi_version();
  CHECK(v >> 16 == PUNKTFUNK_ABI_VERSION_MAJOR, "library major %u", v >> 16);
  CHECK(v >= PUNKTFUNK_ABI_VERSION, "library version %#x older than the header's", v);

  PunktfunkReassembler *r = NULL;
  CHECK(punktfunk_reassembler_new(NULL, SALT, NULL, &r) == PUNKTFUNK_ERR_NULL, "NULL key");
  CHECK(punktfunk_reassembler_new(KEY, SALT, NULL, NULL) == PUNKTFUNK_ERR_NULL, "NULL out");
  static const uint8_t zero_key[16] = {0};
  CHECK(punktfunk_reassembler_new(zero_key, SALT, NULL, &r) == PUNKTFUNK_ERR_INVALID_ARGUMENT,
        "zero key");
  CHECK(r == NULL, "nothing stored on failure");

  PunktfunkReassemblerConfig cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.size = 4;
  CHECK(punktfunk_reassembler_config_default(&cfg) == PUNKTFUNK_ERR_STRUCT_SIZE, "small cfg");
  CHECK(punktfunk_reassembler_new(KEY, SALT, &cfg, &r) == PUNKTFUNK_ERR_STRUCT_SIZE, "small");
  cfg.size = sizeof cfg;
  CHECK(punktfunk_reassembler_config_default(&cfg) == PUNKTFUNK_OK, "default");
  cfg.plane = 0x99;
  CHECK(punktfunk_reassembler_new(KEY, SALT, &cfg, &r) == PUNKTFUNK_ERR_INVALID_ARGUMENT,
        "unknown plane");
  /* A newer header's struct: larger, its unknown tail zero, is accepted. */
  struct {
    PunktfunkReassemblerConfig cfg;
    uint64_t newer_field;
  } bigger;
  memset(&bigger, 0, sizeof bigger);
  bigger.cfg.size = sizeof bigger;
  CHECK(punktfunk_reassembler_config_default(&bigger.cfg) == PUNKTFUNK_OK, "bigger default");
  CHECK(punktfunk_reassembler_new(KEY, SALT, &bigger.cfg, &r) == PUNKTFUNK_OK, "bigger");
  punktfunk_reassembler_free(r);
  r = NULL;
  bigger.newer_field = 1;
  CHECK(punktfunk_reassembler_new(KEY, SALT, &bigger.cfg, &r) == PUNKTFUNK_ERR_STRUCT_SIZE,
        "unknown field set");

  CHECK(punktfunk_reassembler_new(KEY, SALT, NULL, &r) == PUNKTFUNK_OK, "defaults");
  uint8_t byte = 0;
  CHECK(punktfunk_reassembler_push(NULL, 0, &byte, 1) == PUNKTFUNK_ERR_NULL, "NULL handle");
  CHECK(punktfunk_reassembler_push(r, 0, NULL, 5) == PUNKTFUNK_ERR_NULL, "NULL datagram");
  CHECK(punktfunk_reassembler_push(r, 0, NULL, 0) == PUNKTFUNK_DROP_MALFORMED, "empty datagram");
  uint64_t deadline = 0;
  CHECK(punktfunk_reassembler_poll_timeout_ns(r, NULL) == PUNKTFUNK_ERR_NULL, "NULL deadline");
  CHECK(punktfunk_reassembler_poll_timeout_ns(r, &deadline) == 0, "nothing waits");
  PunktfunkEvent ev;
  memset(&ev, 0, sizeof ev);
  CHECK(punktfunk_reassembler_poll_event(r, &ev) == PUNKTFUNK_ERR_STRUCT_SIZE, "event size 0");
  CHECK(punktfunk_reassembler_poll_event(r, NULL) == PUNKTFUNK_ERR_NULL, "NULL event");
  PunktfunkStats stats;
  memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats - 8;
  CHECK(punktfunk_reassembler_stats(r, &stats) == PUNKTFUNK_ERR_STRUCT_SIZE, "small stats");
  punktfunk_reassembler_free(r);
  punktfunk_reassembler_free(NULL);

  PunktfunkSealer *s = NULL;
  CHECK(punktfunk_sealer_new(KEY, SALT, PUNKTFUNK_PLANE_AUDIO, 1407, &s) ==
            PUNKTFUNK_ERR_INVALID_ARGUMENT,
        "odd payload");
  CHECK(punktfunk_sealer_new(KEY, NULL, PUNKTFUNK_PLANE_AUDIO, 1408, &s) == PUNKTFUNK_ERR_NULL,
        "NULL salt");
  CHECK(punktfunk_encode_request_keyframe(NULL, 0, NULL) == PUNKTFUNK_ERR_NULL, "NULL written");
  CHECK(punktfunk_control_decoder_new(NULL) == PUNKTFUNK_ERR_NULL, "NULL decoder out");

  CHECK(strcmp(punktfunk_strerror(PUNKTFUNK_ERR_NULL), "null pointer argument") == 0, "strerror");
  CHECK(punktfunk_strerror(-12345) != NULL, "strerror of an unknown code");
  printf("errors: version %u.%u, error paths checked\n", v >> 16, v & 0xffff);
  return 0;
}

int main(void) {
  RUN(errors());
  RUN(control());
  RUN(data_plane());
  if (failures) return 1;
  printf("all passed\n");
  return 0;
}
