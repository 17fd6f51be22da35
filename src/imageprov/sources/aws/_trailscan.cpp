// Count the records of a CloudTrail log file in native code.
//
// A log file as S3 delivers it is `{"Records": [...]}`, and almost none of its
// records name an image. For those, a reader needs only the event time, the event
// name and source, the account and the region, to count the record and widen the
// time span of its (account, region). This module parses the whole file with
// simdjson's DOM parser, which validates every byte, and reads those five fields of
// each record. It returns the records it does not count itself as minified JSON:
// image events, and any record with a missing field or a field of another type.
// The Python reader reads those as it reads any other record.
//
// `scan_gzip` also inflates a gzip log file, with ISA-L where the module was built
// against it, into a buffer that the thread keeps between files and that simdjson
// reads in place. A file in any other form is left to the Python reader.
//
// The rules are those of `trail_documents._read_parsed_log_file`, which reads the
// same files where this module is not built. A test compares the two on generated
// and malformed files. The GIL is released while the file is parsed and walked, so
// several threads can read files at once.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <simdjson.h>

#ifdef IMAGEPROV_WITH_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using simdjson::dom::element;
using simdjson::dom::object;

// A parser keeps its buffers between files, which saves allocating them again for
// every file. One that grew for a very large file is let go, so that a thread does
// not hold that memory for good.
constexpr size_t kKeptCapacity = 64u << 20;
thread_local std::unique_ptr<simdjson::dom::parser> t_parser;

// The maximum length of an account and of a region that the store keeps, as the
// Python reader checks them. These count bytes and the Python reader counts characters, so a
// value between the two is left to the Python reader to decide.
constexpr size_t kMaxAccount = 128;
constexpr size_t kMaxRegion = 64;

enum class Field { kAbsent, kString, kOther };

// Read a member's value. A missing member and a JSON null are both absent, as for
// `dict.get` in the Python reader.
Field text_value(bool present, element value, std::string_view &out) {
  if (!present || value.is_null()) {
    return Field::kAbsent;
  }
  return value.get_string().get(out) ? Field::kOther : Field::kString;
}

// A key to look up, with its first eight bytes as one word when it has that many.
struct Name {
  std::string_view text;
  uint64_t head = 0;

  Name() = default;
  Name(const char *name) : text(name) {  // NOLINT: converts from a literal
    if (text.size() >= sizeof head) {
      std::memcpy(&head, text.data(), sizeof head);
    }
  }

  // Most keys of a record differ from the names looked up in length or in their
  // first eight bytes, which cost one comparison each without a call to memcmp.
  bool matches(std::string_view key) const {
    if (key.size() != text.size()) {
      return false;
    }
    if (key.size() < sizeof head) {
      return key == text;
    }
    uint64_t word;
    std::memcpy(&word, key.data(), sizeof word);
    if (word != head) {
      return false;
    }
    for (size_t i = sizeof head; i < key.size(); i++) {
      if (key[i] != text[i]) {
        return false;
      }
    }
    return true;
  }
};

// Look up several members of an object in one pass over its keys. A JSON object
// may repeat a key, and parsers disagree on which value wins: simdjson's lookup
// takes the first and the Python reader's orjson the last. `repeated` marks an
// object that repeats any of the keys, which is then left to the Python reader.
template <size_t N>
struct Members {
  const std::array<Name, N> &keys;
  std::array<element, N> values{};
  std::array<bool, N> present{};
  bool repeated = false;

  explicit Members(const std::array<Name, N> &names) : keys(names) {}

  void read(object fields) {
    for (const auto pair : fields) {
      for (size_t i = 0; i < N; i++) {
        if (keys[i].matches(pair.key)) {
          repeated = repeated || present[i];
          present[i] = true;
          values[i] = pair.value;
          break;
        }
      }
    }
  }

  Field text(size_t i, std::string_view &out) const {
    return text_value(present[i], values[i], out);
  }
};

bool digits(std::string_view text, size_t start, size_t count) {
  for (size_t i = start; i < start + count; i++) {
    if (text[i] < '0' || text[i] > '9') {
      return false;
    }
  }
  return true;
}

int number(std::string_view text, size_t start, size_t count) {
  int value = 0;
  for (size_t i = start; i < start + count; i++) {
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// Whether `text` is a real UTC time written `YYYY-MM-DDTHH:MM:SSZ`: the test of
// `_Reader.valid_time`, which takes years 1 to 9999 and no leap second.
bool utc_second(std::string_view text) {
  if (text.size() != 20 || text[19] != 'Z' || !digits(text, 0, 4) || text[4] != '-' ||
      !digits(text, 5, 2) || text[7] != '-' || !digits(text, 8, 2) || text[10] != 'T' ||
      !digits(text, 11, 2) || text[13] != ':' || !digits(text, 14, 2) ||
      text[16] != ':' || !digits(text, 17, 2)) {
    return false;
  }
  const int year = number(text, 0, 4), month = number(text, 5, 2);
  const int day = number(text, 8, 2);
  if (year < 1 || month < 1 || month > 12 || day < 1 || number(text, 11, 2) > 23 ||
      number(text, 14, 2) > 59 || number(text, 17, 2) > 59) {
    return false;
  }
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return day <= kDays[month - 1] + (month == 2 && leap ? 1 : 0);
}

// Whether the first record marks the file as an S3, SNS or SQS notice or as
// CloudTrail Insights events, which the Python reader reports as such. A first
// record that repeats one of these keys is left to the Python reader too.
bool notice(object first) {
  static const std::array<Name, 3> kKeys{"eventSource", "EventSource", "eventType"};
  Members<3> members(kKeys);
  members.read(first);
  if (members.repeated) {
    return true;
  }
  std::string_view value;
  for (size_t i = 0; i < 2; i++) {
    if (members.text(i, value) == Field::kString &&
        (value == "aws:s3" || value == "aws:sns" || value == "aws:sqs")) {
      return true;
    }
  }
  return members.text(2, value) == Field::kString && value == "AwsCloudTrailInsight";
}

struct Span {
  std::string first;
  std::string last;
};

struct Scan {
  // Whether the text is a log file this module reads; when not, nothing is read.
  bool read = false;
  size_t records = 0;
  std::map<std::pair<std::string, std::string>, Span> spans;
  // The position and minified JSON of each record left to the Python reader.
  std::vector<std::pair<size_t, std::string>> others;
};

// The (eventSource, eventName) pairs of image events.
using EventKeys = std::vector<std::pair<std::string, std::string>>;

struct Options {
  std::string fallback_account;
  const EventKeys *events = nullptr;
};

bool names_image(const Options &options, std::string_view source, std::string_view name) {
  for (const auto &[event_source, event_name] : *options.events) {
    if (event_name == name && event_source == source) {
      return true;
    }
  }
  return false;
}

// Count `record` into `scan` when it names no image and its fields have the
// expected types. Returns false to leave the record to the Python reader.
bool count(object record, const Options &options, Scan &scan) {
  enum { kTime, kSource, kName, kAccount, kRegion, kIdentity };
  static const std::array<Name, 6> kKeys{"eventTime",          "eventSource",
                                         "eventName",          "recipientAccountId",
                                         "awsRegion",          "userIdentity"};
  Members<6> members(kKeys);
  members.read(record);
  std::string_view when, source, name, account, region;
  if (members.repeated || members.text(kTime, when) != Field::kString ||
      !utc_second(when) || members.text(kSource, source) != Field::kString ||
      source.empty() || members.text(kName, name) != Field::kString || name.empty() ||
      names_image(options, source, name)) {
    return false;
  }
  if (members.text(kAccount, account) == Field::kOther ||
      members.text(kRegion, region) == Field::kOther || region.size() > kMaxRegion) {
    return false;
  }

  std::string_view scope_account = "unknown";
  if (!account.empty()) {
    scope_account = account;
  } else if (!options.fallback_account.empty()) {
    scope_account = options.fallback_account;
  } else {
    object identity;
    if (members.present[kIdentity] &&
        !members.values[kIdentity].get_object().get(identity)) {
      static const std::array<Name, 1> kIdentityKeys{"accountId"};
      Members<1> identity_members(kIdentityKeys);
      identity_members.read(identity);
      std::string_view identity_account;
      if (identity_members.repeated) {
        return false;
      }
      if (identity_members.text(0, identity_account) == Field::kString &&
          !identity_account.empty()) {
        scope_account = identity_account;
      }
    }
  }
  if (scope_account.size() > kMaxAccount) {
    return false;
  }
  std::string scope_region = region.empty() ? "unknown" : std::string(region);

  auto key = std::make_pair(std::string(scope_account), std::move(scope_region));
  auto found = scan.spans.find(key);
  if (found == scan.spans.end()) {
    scan.spans.emplace(std::move(key), Span{std::string(when), std::string(when)});
  } else if (when < found->second.first) {
    found->second.first = when;
  } else if (when > found->second.last) {
    found->second.last = when;
  }
  return true;
}

// Parse `text` with `parser` and walk its records. With `padded`, the
// `SIMDJSON_PADDING` bytes past the end of the text may be read, so simdjson reads
// the text in place instead of copying it.
void walk_with(simdjson::dom::parser &parser, const char *text, size_t length,
               bool padded, const Options &options, Scan &scan) {
  element document;
  object root;
  if (parser.parse(text, length, !padded).get(document) ||
      document.get_object().get(root)) {
    return;
  }
  static const std::array<Name, 1> kTopKeys{"Records"};
  Members<1> top(kTopKeys);
  top.read(root);
  simdjson::dom::array records;
  if (top.repeated || !top.present[0] || top.values[0].get_array().get(records)) {
    return;
  }
  object first;
  if (records.size() > 0 && !records.at(0).get_object().get(first) && notice(first)) {
    return;
  }
  scan.read = true;
  size_t position = 0;
  for (element record : records) {
    object fields;
    if (record.get_object().get(fields) || !count(fields, options, scan)) {
      scan.others.emplace_back(position, simdjson::minify(record));
    }
    position++;
  }
  scan.records = position;
}

// Parse `text` and walk its records with this thread's parser. Runs without the
// GIL: it touches no Python object.
void walk(const char *text, size_t length, bool padded, const Options &options,
          Scan &scan) {
  if (!t_parser) {
    t_parser = std::make_unique<simdjson::dom::parser>();
  }
  try {
    walk_with(*t_parser, text, length, padded, options, scan);
  } catch (...) {
    t_parser.reset();
    throw;
  }
  // The parser grows to the largest file it has parsed, whether the parse
  // succeeded or not.
  if (t_parser->capacity() > kKeptCapacity) {
    t_parser.reset();
  }
}

#ifdef IMAGEPROV_WITH_ISAL
// The inflated text of the last gzip file, with room for simdjson's padding. A
// thread keeps it between files unless it grew past `kKeptCapacity`.
struct Inflated {
  std::unique_ptr<char[]> data;
  size_t capacity = 0;
};
thread_local Inflated t_inflated;

constexpr unsigned char kGzipMagic[] = {0x1f, 0x8b};
// Deflate cannot expand data more than about 1032 times, so a trailer that claims
// more is false, and no buffer of that size is reserved for it.
constexpr uint64_t kMaxRatio = 1032;

// Inflate `data` into `t_inflated` and return its length. Returns false when the
// data is anything but one whole gzip member that inflates to the size its
// trailer gives, no larger than `limit`: concatenated members, bytes after the
// member, a damaged stream. The Python reader reads those and reports problems.
bool inflate_member(const unsigned char *data, size_t size, size_t limit,
                    size_t &length) {
  if (size < 18 || data[0] != kGzipMagic[0] || data[1] != kGzipMagic[1]) {
    return false;
  }
  uint32_t expected = 0;
  for (size_t i = 0; i < 4; i++) {
    expected |= static_cast<uint32_t>(data[size - 4 + i]) << (8 * i);
  }
  // The trailer gives the size modulo 2^32, so a larger document fails the check
  // below and goes to the Python reader.
  if (expected > limit || expected > static_cast<uint64_t>(size) * kMaxRatio) {
    return false;
  }
  const size_t needed = static_cast<size_t>(expected) + simdjson::SIMDJSON_PADDING;
  if (t_inflated.capacity < needed) {
    // The old buffer goes first, so that the two are never held at once. The
    // capacity is 0 until the new one exists, in case its allocation throws.
    t_inflated.data.reset();
    t_inflated.capacity = 0;
    t_inflated.data.reset(new char[needed]);
    t_inflated.capacity = needed;
  }
  inflate_state state;
  isal_inflate_init(&state);
  state.crc_flag = ISAL_GZIP;
  state.next_in = const_cast<unsigned char *>(data);
  state.avail_in = static_cast<uint32_t>(size);
  state.next_out = reinterpret_cast<unsigned char *>(t_inflated.data.get());
  // One byte more than the trailer gives, so that a longer stream is caught.
  state.avail_out = expected + 1;
  if (size > UINT32_MAX || isal_inflate(&state) != ISAL_DECOMP_OK ||
      state.block_state != ISAL_BLOCK_FINISH || state.total_out != expected ||
      state.avail_in != 0 || state.read_in_length >= 8) {
    return false;
  }
  length = expected;
  return true;
}

void release_inflated() {
  if (t_inflated.capacity > kKeptCapacity) {
    t_inflated.data.reset();
    t_inflated.capacity = 0;
  }
}
#endif

// Whether `text` opens as a log file: `{"Records"` after at most 32 bytes of ASCII
// whitespace, the test `trail_documents.read_document` makes.
bool opens_log_file(const char *text, size_t length) {
  static constexpr std::string_view kOpening = "{\"Records\"";
  size_t start = 0;
  while (start < length && start < 32 &&
         std::strchr(" \t\n\r\v\f", text[start]) != nullptr && text[start] != '\0') {
    start++;
  }
  const size_t window = length < 32 ? length : 32;
  return start + kOpening.size() <= window &&
         std::string_view(text + start, kOpening.size()) == kOpening;
}

bool text_of(PyObject *value, std::string &out) {
  Py_ssize_t size = 0;
  const char *data = PyUnicode_AsUTF8AndSize(value, &size);
  if (data == nullptr) {
    return false;
  }
  out.assign(data, static_cast<size_t>(size));
  return true;
}

bool read_event(PyObject *item, EventKeys &events) {
  std::string source, name;
  if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
    PyErr_SetString(PyExc_TypeError, "events must be (eventSource, eventName) pairs");
    return false;
  }
  if (!text_of(PyTuple_GET_ITEM(item, 0), source) ||
      !text_of(PyTuple_GET_ITEM(item, 1), name)) {
    return false;
  }
  events.emplace_back(std::move(source), std::move(name));
  return true;
}

bool read_events(PyObject *pairs, EventKeys &events) {
  PyObject *iterator = PyObject_GetIter(pairs);
  if (iterator == nullptr) {
    return false;
  }
  PyObject *item;
  while ((item = PyIter_Next(iterator)) != nullptr) {
    const bool ok = read_event(item, events);
    Py_DECREF(item);
    if (!ok) {
      Py_DECREF(iterator);
      return false;
    }
  }
  Py_DECREF(iterator);
  return !PyErr_Occurred();
}

PyObject *text_object(const std::string &text) {
  return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()),
                              "strict");
}

PyObject *spans_object(const Scan &scan) {
  PyObject *spans = PyDict_New();
  if (spans == nullptr) {
    return nullptr;
  }
  for (const auto &[scope, span] : scan.spans) {
    PyObject *key = Py_BuildValue("(NN)", text_object(scope.first),
                                  text_object(scope.second));
    PyObject *value = Py_BuildValue("[NN]", text_object(span.first),
                                    text_object(span.last));
    const int failed = key == nullptr || value == nullptr ||
                       PyDict_SetItem(spans, key, value) < 0;
    Py_XDECREF(key);
    Py_XDECREF(value);
    if (failed) {
      Py_DECREF(spans);
      return nullptr;
    }
  }
  return spans;
}

PyObject *others_object(const Scan &scan) {
  PyObject *others = PyList_New(static_cast<Py_ssize_t>(scan.others.size()));
  if (others == nullptr) {
    return nullptr;
  }
  for (size_t i = 0; i < scan.others.size(); i++) {
    const auto &[position, json] = scan.others[i];
    PyObject *item = Py_BuildValue("(ny#)", static_cast<Py_ssize_t>(position),
                                   json.data(), static_cast<Py_ssize_t>(json.size()));
    if (item == nullptr) {
      Py_DECREF(others);
      return nullptr;
    }
    PyList_SET_ITEM(others, static_cast<Py_ssize_t>(i), item);
  }
  return others;
}

// The result of a scan as Python objects: (records, spans, others), or None when
// the file was not read.
PyObject *scan_result(const Scan &scan) {
  if (!scan.read) {
    Py_RETURN_NONE;
  }
  PyObject *spans = spans_object(scan);
  if (spans == nullptr) {
    return nullptr;
  }
  PyObject *others = others_object(scan);
  if (others == nullptr) {
    Py_DECREF(spans);
    return nullptr;
  }
  return Py_BuildValue("(nNN)", static_cast<Py_ssize_t>(scan.records), spans, others);
}

// Run `work` without the GIL and turn what it throws into a Python error. Returns
// false when it threw.
template <typename Work>
bool without_gil(Work work) {
  bool out_of_memory = false;
  bool failed = false;
  Py_BEGIN_ALLOW_THREADS
  try {
    work();
  } catch (const std::bad_alloc &) {
    out_of_memory = true;
  } catch (...) {
    // No exception may leave a function that Python calls.
    failed = true;
  }
  Py_END_ALLOW_THREADS
  if (out_of_memory) {
    PyErr_NoMemory();
  } else if (failed) {
    PyErr_SetString(PyExc_RuntimeError, "reading the log file failed in native code");
  }
  return !out_of_memory && !failed;
}

bool read_fallback(PyObject *fallback, Options &options) {
  return fallback == Py_None || text_of(fallback, options.fallback_account);
}

PyObject *scan_log_file(PyObject *, PyObject *args) {
  Py_buffer text;
  PyObject *fallback;
  PyObject *pairs;
  if (!PyArg_ParseTuple(args, "y*OO:scan", &text, &fallback, &pairs)) {
    return nullptr;
  }
  EventKeys events;
  Options options;
  options.events = &events;
  if (!read_fallback(fallback, options) || !read_events(pairs, events)) {
    PyBuffer_Release(&text);
    return nullptr;
  }
  Scan scan;
  const bool done = without_gil([&] {
    walk(static_cast<const char *>(text.buf), static_cast<size_t>(text.len), false,
         options, scan);
  });
  PyBuffer_Release(&text);
  return done ? scan_result(scan) : nullptr;
}

#ifdef IMAGEPROV_WITH_ISAL
// Inflate one gzip log file and walk it into `scan`, which stays unread when the
// file is anything else. Runs without the GIL.
void scan_gzip_file(const Py_buffer &data, size_t limit, const Options &options,
                    Scan &scan) {
  size_t length = 0;
  if (!inflate_member(static_cast<const unsigned char *>(data.buf),
                      static_cast<size_t>(data.len), limit, length)) {
    return;
  }
  const char *text = t_inflated.data.get();
  // A byte-order mark is dropped, as `compression.document_text` drops it.
  if (length >= 3 && std::memcmp(text, "\xef\xbb\xbf", 3) == 0) {
    text += 3;
    length -= 3;
  }
  if (opens_log_file(text, length)) {
    walk(text, length, true, options, scan);
  }
}

// One file of a `scan_gzip` call: its bytes, held while the GIL is released.
struct GzipFile {
  Py_buffer data{};
  bool acquired = false;
  Options options;
  Scan scan;
};

bool read_gzip_file(PyObject *item, const EventKeys &events, GzipFile &file) {
  PyObject *fallback;
  if (!PyTuple_Check(item)) {
    PyErr_SetString(PyExc_TypeError, "files must be (data, fallback_account) pairs");
    return false;
  }
  if (!PyArg_ParseTuple(item, "y*O:scan_gzip", &file.data, &fallback)) {
    return false;
  }
  file.acquired = true;
  file.options.events = &events;
  return read_fallback(fallback, file.options);
}

PyObject *scan_gzip_log_files(PyObject *, PyObject *args) {
  PyObject *items;
  PyObject *pairs;
  Py_ssize_t limit;
  if (!PyArg_ParseTuple(args, "OOn:scan_gzip", &items, &pairs, &limit)) {
    return nullptr;
  }
  if (limit < 0) {
    PyErr_SetString(PyExc_ValueError, "limit must not be negative");
    return nullptr;
  }
  EventKeys events;
  if (!read_events(pairs, events)) {
    return nullptr;
  }
  PyObject *sequence = PySequence_Fast(items, "files must be a sequence");
  if (sequence == nullptr) {
    return nullptr;
  }
  const Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
  std::vector<GzipFile> files(static_cast<size_t>(count));
  bool ready = true;
  for (Py_ssize_t i = 0; ready && i < count; i++) {
    ready = read_gzip_file(PySequence_Fast_GET_ITEM(sequence, i), events,
                           files[static_cast<size_t>(i)]);
  }
  // The GIL is released once for every file, so that a thread that reads several
  // files waits for it once.
  const bool done = ready && without_gil([&] {
    try {
      for (GzipFile &file : files) {
        scan_gzip_file(file.data, static_cast<size_t>(limit), file.options, file.scan);
      }
    } catch (...) {
      release_inflated();
      throw;
    }
    release_inflated();
  });
  for (GzipFile &file : files) {
    if (file.acquired) {
      PyBuffer_Release(&file.data);
    }
  }
  Py_DECREF(sequence);
  if (!done) {
    return nullptr;
  }
  PyObject *results = PyList_New(count);
  if (results == nullptr) {
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < count; i++) {
    PyObject *result = scan_result(files[static_cast<size_t>(i)].scan);
    if (result == nullptr) {
      Py_DECREF(results);
      return nullptr;
    }
    PyList_SET_ITEM(results, i, result);
  }
  return results;
}
#endif

PyMethodDef kMethods[] = {
    {"scan", scan_log_file, METH_VARARGS,
     "scan(text, fallback_account, events)\n--\n\n"
     "Read a CloudTrail log file and return (records, spans, others), or None\n"
     "when the text is not valid JSON of the shape {\"Records\": [...]} or is a\n"
     "notice. `spans` maps (account, region) to [first, last] event times of the\n"
     "records counted here; `others` lists (position, minified JSON) of the\n"
     "records left to the caller: records whose (eventSource, eventName) pair is\n"
     "one of `events`, and records with a missing field or a field of another\n"
     "type. Raises MemoryError when the file does not fit\n"
     "in memory."},
#ifdef IMAGEPROV_WITH_ISAL
    {"scan_gzip", scan_gzip_log_files, METH_VARARGS,
     "scan_gzip(files, events, limit)\n--\n\n"
     "Read each (data, fallback_account) of `files` as a gzip log file: inflate\n"
     "one gzip member and read it as scan() reads a log file. Returns a list with\n"
     "scan()'s result for each file, or None, having read nothing, where the data\n"
     "is not a single gzip member that inflates to at most `limit` bytes of a\n"
     "{\"Records\": [...]} log file that scan() reads. The GIL is released once\n"
     "for all the files."},
#endif
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT,
    "_trailscan",
    "Count the records of CloudTrail log files with simdjson, without the GIL.",
    -1,
    kMethods,
    nullptr,
    nullptr,
    nullptr,
    nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__trailscan(void) { return PyModule_Create(&kModule); }
