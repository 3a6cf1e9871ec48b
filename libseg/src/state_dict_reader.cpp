// Reads a state_dict from a torch.save archive without LibTorch's unpickler: the ZIP records
// through PyTorchStreamReader (after torch_archive_problem has checked the archive), the
// pickle through a reader of the few opcodes and callables torch.save writes for a dict of
// tensors. It trusts nothing in the file: every length is checked against the bytes present
// before anything is allocated, containers nest at most kMaxDepth deep, and every tensor must
// lie inside its storage.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/state_dict.h>
#include <seg/torch_archive.h>

#include "bounded_reader.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>

namespace seg {
namespace fs = std::filesystem;

namespace {

constexpr int kMaxDepth = 32;           // a state_dict nests 4 deep (its dict, a tensor's arguments, their tuples)
constexpr int64_t kMaxDims = 16;        // dimensions of one tensor
constexpr size_t kMaxNameBytes = 1024;  // a tensor's name

// One value of the pickle subset.
struct Value;
using ValueRef = std::shared_ptr<Value>;
struct Value {
  enum class Kind { none, boolean, integer, floating, text, tuple, list, dict, callable, storage, tensor };
  explicit Value(Kind k) : kind(k) {}
  Kind kind;
  int64_t integer = 0;  // integer, boolean
  double floating = 0;
  std::string text;                              // text; callable: "module.name"
  std::vector<ValueRef> items;                   // tuple, list; dict: key, value, key, value, ...
  std::unordered_map<std::string, size_t> keys;  // dict: key (see key_text) -> its index in items
  at::Tensor tensor;                             // storage (1-D, all its elements), tensor
  int depth = 0;                                 // containers nested inside this one
  bool placed = false;                           // inside another container, and so no longer changed
};

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::none: return "None";
    case Value::Kind::boolean: return "a bool";
    case Value::Kind::integer: return "an int";
    case Value::Kind::floating: return "a float";
    case Value::Kind::text: return "a str";
    case Value::Kind::tuple: return "a tuple";
    case Value::Kind::list: return "a list";
    case Value::Kind::dict: return "a dict";
    case Value::Kind::callable: return "a class or function";
    case Value::Kind::storage: return "a storage";
    case Value::Kind::tensor: return "a tensor";
  }
  return "?";
}

bool is_container(const Value& v) {
  return v.kind == Value::Kind::tuple || v.kind == Value::Kind::list || v.kind == Value::Kind::dict;
}

// "<source>: not a readable PyTorch state_dict: <what>; <what to do>".
Error unreadable(const std::string& source, const std::string& what) {
  return Error(source, "not a readable PyTorch state_dict: " + what +
                           "; save the weights with torch.save(model.state_dict(), path)");
}

// Text from the file, fit for a one-line message: printable ASCII, at most 60 characters.
std::string printable(const std::string& text) {
  std::string shown;
  for (char c : text.substr(0, 60)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  return text.size() > 60 ? shown + "..." : shown;
}

bool is_printable_name(const std::string& name) {
  return name.size() <= kMaxNameBytes &&
         std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// The storage classes torch.save names (torch.FloatStorage, ...).
const std::map<std::string, at::ScalarType>& storage_types() {
  static const std::map<std::string, at::ScalarType> types = {
      {"torch.FloatStorage", at::kFloat},       {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},       {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool}};
  return types;
}

// The callables the subset knows: OrderedDict (the state_dict itself, and each tensor's empty
// backward hooks), the tensor and parameter rebuilders, the storage classes, and the type tag
// LibTorch's pickle_save puts on a typed dict.
bool is_known_callable(const std::string& name) {
  return name == "collections.OrderedDict" || name == "torch._utils._rebuild_tensor_v2" ||
         name == "torch._utils._rebuild_parameter" || name == "torch.jit._pickle.restore_type_tag" ||
         storage_types().count(name) != 0;
}

// A storage's elements, read from the record data/<key>.
using StorageLoader = std::function<at::Tensor(const std::string& key, at::ScalarType type, int64_t numel)>;

class PickleReader {
 public:
  PickleReader(const char* data, size_t size, StorageLoader load_storage, std::string source)
      : data_(data), size_(size), load_storage_(std::move(load_storage)), source_(std::move(source)) {}

  ValueRef read() {
    for (;;) {
      op_at_ = at_;
      const uint8_t op = byte();
      switch (op) {
        case 0x80: {  // PROTO
          const int protocol = byte();
          if (protocol < 2 || protocol > 5) fail("declares pickle protocol " + std::to_string(protocol));
          break;
        }
        case 0x95: skip(8); break;  // FRAME: a hint for buffering readers
        case '.': {                 // STOP
          if (stack_.size() != 1 || !marks_.empty())
            fail("stops with " + std::to_string(stack_.size()) + " values left");
          return stack_.back();
        }
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case 'N': push(std::make_shared<Value>(Value::Kind::none)); break;
        case 0x88: push(boolean(true)); break;                                                          // NEWTRUE
        case 0x89: push(boolean(false)); break;                                                         // NEWFALSE
        case 'K': push(integer(byte())); break;                                                         // BININT1
        case 'M': push(integer(static_cast<int64_t>(little_endian(2)))); break;                         // BININT2
        case 'J': push(integer(static_cast<int32_t>(static_cast<uint32_t>(little_endian(4))))); break;  // BININT
        case 0x8a: push(integer(long1())); break;                                                       // LONG1
        case 'G': push(binfloat()); break;                                                              // BINFLOAT
        case 'X': push(text(little_endian(4))); break;                                                  // BINUNICODE
        case 0x8c: push(text(byte())); break;                                // SHORT_BINUNICODE
        case 0x8d: push(text(little_endian(8))); break;                      // BINUNICODE8
        case ')': push(std::make_shared<Value>(Value::Kind::tuple)); break;  // EMPTY_TUPLE
        case ']': push(std::make_shared<Value>(Value::Kind::list)); break;   // EMPTY_LIST
        case '}': push(std::make_shared<Value>(Value::Kind::dict)); break;   // EMPTY_DICT
        case 't': push(tuple(pop_mark())); break;                            // TUPLE
        case 0x85:
        case 0x86:
        case 0x87: push(tuple(pop_n(op - 0x84))); break;  // TUPLE1..3
        case 'c': {                                       // GLOBAL: "module\nname\n"
          const std::string module = line();
          push(callable(module + "." + line()));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const ValueRef name = pop(), module = pop();
          if (name->kind != Value::Kind::text || module->kind != Value::Kind::text) fail("names a global by non-text");
          push(callable(module->text + "." + name->text));
          break;
        }
        case 'q': put(byte()); break;                  // BINPUT
        case 'r': put(little_endian(4)); break;        // LONG_BINPUT
        case 0x94: put(memo_.size()); break;           // MEMOIZE
        case 'h': push(get(byte())); break;            // BINGET
        case 'j': push(get(little_endian(4))); break;  // LONG_BINGET
        case 'Q': push(storage(pop())); break;         // BINPERSID
        case 'R': {                                    // REDUCE
          const ValueRef args = pop(), function = pop();
          push(call(*function, args));
          break;
        }
        case 'b': {  // BUILD: a state_dict's _metadata, which says nothing about the weights
          const ValueRef state = pop();
          if (top()->kind != Value::Kind::dict || state->kind != Value::Kind::dict)
            fail("sets the state of " + std::string(kind_name(top()->kind)));
          break;
        }
        case 's': {  // SETITEM
          const ValueRef value = pop(), key = pop();
          set_item(top(), key, value);
          break;
        }
        case 'u': {  // SETITEMS
          const auto items = pop_mark();
          if (items.size() % 2 != 0) fail("sets a key without a value");
          const ValueRef dict = top();
          for (size_t k = 0; k < items.size(); k += 2) set_item(dict, items[k], items[k + 1]);
          break;
        }
        case 'a': {  // APPEND
          const ValueRef value = pop();
          append(top(), value);
          break;
        }
        case 'e': {  // APPENDS
          const auto items = pop_mark();
          const ValueRef list = top();
          for (const auto& item : items) append(list, item);
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("has opcode ") + hex + ", which torch.save does not write for a state_dict");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw unreadable(source_, "its pickle " + what + " (at byte " + std::to_string(op_at_) + ")");
  }

  uint8_t byte() {
    if (at_ >= size_) fail("ends before its STOP opcode (truncated)");
    return static_cast<uint8_t>(data_[at_++]);
  }
  void need(uint64_t n) {
    if (n > size_ - at_)
      fail("declares " + std::to_string(n) + " bytes where " + std::to_string(size_ - at_) +
           " remain (damaged or crafted)");
  }
  void skip(uint64_t n) {
    need(n);
    at_ += static_cast<size_t>(n);
  }
  uint64_t little_endian(int bytes) {
    need(static_cast<uint64_t>(bytes));
    uint64_t v = 0;
    for (int k = 0; k < bytes; ++k) v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[at_ + k])) << (8 * k);
    at_ += static_cast<size_t>(bytes);
    return v;
  }
  int64_t long1() {
    const int bytes = byte();
    if (bytes > 8) fail("has an integer of " + std::to_string(bytes) + " bytes");
    if (bytes == 0) return 0;
    uint64_t v = little_endian(bytes);
    if (bytes < 8 && (v >> (8 * bytes - 1)) != 0) v |= ~uint64_t{0} << (8 * bytes);  // negative: sign-extend
    return static_cast<int64_t>(v);
  }
  ValueRef binfloat() {
    need(8);
    uint64_t bits = 0;
    for (int k = 0; k < 8; ++k) bits = bits << 8 | static_cast<uint8_t>(data_[at_ + k]);  // big-endian
    at_ += 8;
    auto v = std::make_shared<Value>(Value::Kind::floating);
    std::memcpy(&v->floating, &bits, sizeof bits);
    return v;
  }
  std::string line() {
    const void* newline = std::memchr(data_ + at_, '\n', size_ - at_);
    if (newline == nullptr) fail("ends inside a global's name (truncated)");
    const size_t end = static_cast<size_t>(static_cast<const char*>(newline) - data_);
    std::string text(data_ + at_, end - at_);
    at_ = end + 1;
    return text;
  }
  ValueRef text(uint64_t length) {
    need(length);
    auto v = std::make_shared<Value>(Value::Kind::text);
    v->text.assign(data_ + at_, static_cast<size_t>(length));
    at_ += static_cast<size_t>(length);
    return v;
  }
  static ValueRef integer(int64_t i) {
    auto v = std::make_shared<Value>(Value::Kind::integer);
    v->integer = i;
    return v;
  }
  static ValueRef boolean(bool b) {
    auto v = std::make_shared<Value>(Value::Kind::boolean);
    v->integer = b ? 1 : 0;
    return v;
  }
  ValueRef callable(const std::string& name) {
    if (!is_known_callable(name)) fail("uses " + printable(name) + ", which a state_dict does not");
    auto v = std::make_shared<Value>(Value::Kind::callable);
    v->text = name;
    return v;
  }

  // The stack, with marks: values above the latest mark belong to the opcode that closes it.
  size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(ValueRef v) { stack_.push_back(std::move(v)); }
  ValueRef top() {
    if (stack_.size() <= base()) fail("uses a value it has not made");
    return stack_.back();
  }
  ValueRef pop() {
    ValueRef v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<ValueRef> pop_n(size_t n) {
    if (stack_.size() - base() < n) fail("uses a value it has not made");
    std::vector<ValueRef> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return items;
  }
  std::vector<ValueRef> pop_mark() {
    if (marks_.empty()) fail("closes a mark it has not set");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<ValueRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }

  void put(uint64_t index) { memo_[index] = top(); }
  ValueRef get(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail("recalls memo " + std::to_string(index) + ", which it has not stored");
    return it->second;
  }

  // `child` goes into `parent`: parent must still be open to change, nesting stays bounded, and
  // a container placed once is never changed again (so no container ever holds itself).
  void place(Value& parent, const ValueRef& child) {
    if (child.get() == &parent) fail("puts a container inside itself");
    if (!is_container(*child)) return;
    child->placed = true;
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxDepth) fail("nests containers more than " + std::to_string(kMaxDepth) + " deep");
  }
  void check_open(const Value& container, Value::Kind kind, const char* what) {
    if (container.kind != kind) fail(std::string(what) + " " + kind_name(container.kind));
    if (container.placed) fail(std::string("changes a container after placing it in another"));
  }
  ValueRef tuple(std::vector<ValueRef> items) {
    auto v = std::make_shared<Value>(Value::Kind::tuple);
    for (const auto& item : items) place(*v, item);
    v->items = std::move(items);
    return v;
  }
  static std::string key_text(const Value& key) {
    return key.kind == Value::Kind::text ? "s" + key.text : "i" + std::to_string(key.integer);
  }
  void set_item(const ValueRef& dict, const ValueRef& key, const ValueRef& value) {
    check_open(*dict, Value::Kind::dict, "sets an item of");
    if (key->kind != Value::Kind::text && key->kind != Value::Kind::integer)
      fail(std::string("has a dict key that is ") + kind_name(key->kind));
    if (key->text.size() > kMaxNameBytes) fail("has a dict key of " + std::to_string(key->text.size()) + " bytes");
    place(*dict, value);
    const auto [it, inserted] = dict->keys.emplace(key_text(*key), dict->items.size());
    if (inserted) {
      dict->items.push_back(key);
      dict->items.push_back(value);
    } else {
      dict->items[it->second + 1] = value;  // a repeated key replaces the value, as in Python
    }
  }
  void append(const ValueRef& list, const ValueRef& value) {
    check_open(*list, Value::Kind::list, "appends to");
    place(*list, value);
    list->items.push_back(value);
  }

  // BINPERSID: ("storage", torch.<Type>Storage, key, location, numel), torch.save's reference
  // to the record data/<key>. Tensors that share a storage name the same key.
  ValueRef storage(const ValueRef& id) {
    const auto& f = id->items;
    if (id->kind != Value::Kind::tuple || f.size() != 5 || f[0]->kind != Value::Kind::text || f[0]->text != "storage" ||
        f[1]->kind != Value::Kind::callable || storage_types().count(f[1]->text) == 0 ||
        f[2]->kind != Value::Kind::text || f[3]->kind != Value::Kind::text || f[4]->kind != Value::Kind::integer)
      fail("refers to something other than a tensor storage");
    const at::ScalarType type = storage_types().at(f[1]->text);
    if (f[4]->integer < 0) fail("gives a storage a negative size");
    auto known = storages_.find(f[2]->text);
    if (known == storages_.end()) {
      known = storages_.emplace(f[2]->text, load_storage_(f[2]->text, type, f[4]->integer)).first;
    } else if (known->second.scalar_type() != type || known->second.numel() != f[4]->integer) {
      fail("reads storage " + printable(f[2]->text) + " as two different types or sizes");
    }
    auto v = std::make_shared<Value>(Value::Kind::storage);
    v->tensor = known->second;
    return v;
  }

  std::vector<int64_t> integers(const ValueRef& tuple, const char* what) {
    if (tuple->kind != Value::Kind::tuple || static_cast<int64_t>(tuple->items.size()) > kMaxDims)
      fail(std::string("gives a tensor's ") + what + " as something other than a tuple of at most " +
           std::to_string(kMaxDims) + " ints");
    std::vector<int64_t> values;
    for (const auto& item : tuple->items) {
      if (item->kind != Value::Kind::integer || item->integer < 0)
        fail(std::string("gives a tensor's ") + what + " a value that is not a count");
      values.push_back(item->integer);
    }
    return values;
  }

  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]):
  // a view of the storage, once every element it reaches is known to lie inside it.
  ValueRef rebuild_tensor(const std::vector<ValueRef>& a) {
    if ((a.size() != 6 && a.size() != 7) || a[0]->kind != Value::Kind::storage || a[1]->kind != Value::Kind::integer ||
        a[4]->kind != Value::Kind::boolean)
      fail("rebuilds a tensor from arguments torch.save does not write");
    const at::Tensor& storage = a[0]->tensor;
    const auto sizes = integers(a[2], "size"), strides = integers(a[3], "strides");
    if (sizes.size() != strides.size()) fail("gives a tensor as many sizes as strides");
    if (a[1]->integer < 0) fail("gives a tensor a negative offset");
    // Elements: the product of the sizes; reach: the furthest element from the storage's start.
    uint64_t elements = 1, reach = static_cast<uint64_t>(a[1]->integer);
    bool overflow = false;
    for (size_t d = 0; d < sizes.size(); ++d) {
      overflow = overflow || __builtin_mul_overflow(elements, static_cast<uint64_t>(sizes[d]), &elements);
      uint64_t step = 0;
      if (sizes[d] > 0)
        overflow =
            overflow ||
            __builtin_mul_overflow(static_cast<uint64_t>(sizes[d] - 1), static_cast<uint64_t>(strides[d]), &step) ||
            __builtin_add_overflow(reach, step, &reach);
    }
    const auto storage_elements = static_cast<uint64_t>(storage.numel());
    if (overflow || (elements > 0 && reach >= storage_elements))
      fail("has a tensor whose sizes and strides reach past its storage of " + std::to_string(storage_elements) +
           " elements (damaged or crafted)");
    // More elements than the storage holds (a stride of 0) is an expanded view, which a
    // state_dict does not hold; refusing it keeps every tensor within the file's size.
    if (elements > storage_elements) fail("has a tensor of more elements than its storage (an expanded view)");
    auto v = std::make_shared<Value>(Value::Kind::tensor);
    v->tensor = elements == 0 ? at::empty(sizes, storage.options()) : storage.as_strided(sizes, strides, a[1]->integer);
    return v;
  }

  ValueRef call(const Value& function, const ValueRef& args) {
    if (function.kind != Value::Kind::callable || args->kind != Value::Kind::tuple)
      fail("calls " + std::string(kind_name(function.kind)));
    const auto& a = args->items;
    if (function.text == "collections.OrderedDict") {
      if (!a.empty()) fail("makes an OrderedDict from arguments");
      return std::make_shared<Value>(Value::Kind::dict);
    }
    if (function.text == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(a);
    if (function.text == "torch._utils._rebuild_parameter") {  // (tensor, requires_grad, hooks)
      if (a.size() != 3 || a[0]->kind != Value::Kind::tensor)
        fail("rebuilds a parameter from something other than a tensor");
      return a[0];
    }
    if (function.text == "torch.jit._pickle.restore_type_tag") {  // (value, "Dict[str, Tensor]")
      if (a.size() != 2) fail("tags a type with other than two arguments");
      return a[0];
    }
    fail("calls " + printable(function.text));
  }

  const char* data_;
  size_t size_;
  size_t at_ = 0, op_at_ = 0;
  StorageLoader load_storage_;
  std::string source_;
  std::vector<ValueRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValueRef> memo_;
  std::map<std::string, at::Tensor> storages_;
};

// The {name: tensor} dict the pickle holds: the top-level dict, or its "state_dict" or
// "model_state_dict" entry (a training checkpoint's).
StateDict tensors_of(const Value& top, const std::string& source) {
  if (top.kind != Value::Kind::dict)
    throw unreadable(source, std::string("it holds ") + kind_name(top.kind) + ", not a dict of tensors");
  const Value* dict = &top;
  for (const char* inner : {"state_dict", "model_state_dict"}) {
    const auto it = top.keys.find(std::string("s") + inner);
    if (it != top.keys.end() && top.items[it->second + 1]->kind == Value::Kind::dict) {
      dict = top.items[it->second + 1].get();
      break;
    }
  }
  StateDict state;
  for (size_t k = 0; k < dict->items.size(); k += 2) {
    const Value &key = *dict->items[k], &value = *dict->items[k + 1];
    if (key.kind != Value::Kind::text || !is_printable_name(key.text))
      throw unreadable(source, "one of its keys is not a parameter name");
    if (value.kind != Value::Kind::tensor)
      throw unreadable(source, "its entry \"" + key.text + "\" is " + kind_name(value.kind) + ", not a tensor");
    state.emplace_back(key.text, value.tensor);
  }
  if (state.empty()) throw unreadable(source, "it holds no tensors");
  return state;
}

// The first line of a LibTorch message, without its backtrace.
std::string first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string message = c10_error ? c10_error->what_without_backtrace() : e.what();
  return message.substr(0, message.find('\n'));
}

}  // namespace

StateDict state_dict_from_pickle(const std::string& pickle, const StorageRecords& records, const std::string& source) {
  // A storage's elements: the record data/<key>, which must hold exactly `numel` of `type`.
  auto load_storage = [&](const std::string& key, at::ScalarType type, int64_t numel) {
    const std::string name = "data/" + printable(key);
    const auto record = records(key);
    if (!record) throw unreadable(source, "it lacks the tensor data " + name);
    const size_t element = at::elementSize(type), size = record->size();
    if (size % element != 0 || static_cast<uint64_t>(numel) != size / element)
      throw unreadable(source, "its record " + name + " holds " + std::to_string(size) + " bytes for " +
                                   std::to_string(numel) + " elements of " + std::to_string(element) +
                                   " bytes (damaged or crafted)");
    // Bools are read as bytes and compared with 0: a byte other than 0 or 1 is no bool.
    at::Tensor elements = at::empty({numel}, at::TensorOptions().dtype(type == at::kBool ? at::kByte : type));
    if (size > 0) std::memcpy(elements.data_ptr(), record->data(), size);
    return type == at::kBool ? elements.ne(0) : elements;
  };
  PickleReader reader(pickle.data(), pickle.size(), load_storage, source);
  try {
    const ValueRef top = reader.read();
    return tensors_of(*top, source);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // LibTorch refusing a tensor the checks let through
    throw unreadable(source, "a tensor LibTorch refuses (" + first_line(e) + ")");
  }
}

StateDict state_dict_from_bytes(const std::string& bytes, const std::string& source) {
  // Python's torch.save before 1.6, or with _use_new_zipfile_serialization=False: a bare pickle
  // that starts with its magic number.
  if (bytes.compare(0, 14, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19") == 0)
    throw Error(source,
                "is in torch.save's legacy format (_use_new_zipfile_serialization=False); load it in Python and "
                "save it again without that option");
  if (const auto problem = torch_archive_problem(bytes); !problem.empty()) throw unreadable(source, problem);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  // A record's bytes, or nullopt when the archive has none of that name.
  auto record = [&](const std::string& name) -> std::optional<std::string> {
    try {
      if (!archive->hasRecord(name)) return std::nullopt;
      const auto [data, size] = archive->getRecord(name);
      return std::string(static_cast<const char*>(data.get()), size);
    } catch (const std::exception& e) {
      throw unreadable(source, "its archive is damaged (" + first_line(e) + ")");
    }
  };
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(std::make_shared<detail::BoundedReader>(bytes));
  } catch (const std::exception& e) {
    throw unreadable(source, "its archive is damaged (" + first_line(e) + ")");
  }
  if (const auto order = record("byteorder"); order && *order != "little")
    throw Error(source, "holds big-endian tensors; save it on a little-endian machine");
  const auto pickle = record("data.pkl");
  if (!pickle) throw unreadable(source, "the archive has no data.pkl");
  return state_dict_from_pickle(
      *pickle, [&](const std::string& key) { return record("data/" + key); }, source);
}

StateDict read_state_dict(const fs::path& path) { return state_dict_from_bytes(read_file(path), path.string()); }

}  // namespace seg
