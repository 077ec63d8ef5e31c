// Lexer and parser for chat templates, following @huggingface/jinja: trim_blocks and lstrip_blocks on, whitespace
// control with '-', the precedence ternary < or < and < not < comparison/in < + - ~ < * / // % < ** < is < | < unary
// sign < call/member < primary.
#include <cctype>
#include <cerrno>

#include "core/unicode.h"
#include "jinja/ast.h"
#include "rlaif/error.h"

namespace rlaif::jinja {
namespace {

enum class Tok {
  Text,
  Number,
  String,
  Ident,
  Equals,
  LParen,
  RParen,
  OpenStmt,
  CloseStmt,
  OpenExpr,
  CloseExpr,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  Comma,
  Dot,
  Colon,
  Pipe,
  Additive,
  Multiplicative,
  Power,
  Comparison,
  UnarySign,
  Comment
};

struct Token {
  Tok type;
  std::string value;
  int line;
};

std::string preprocess(std::string t) {
  if (!t.empty() && t.back() == '\n') t.pop_back();
  // lstrip_blocks: spaces and tabs from the start of a line up to a block or comment tag ({% {# {-).
  std::string out;
  out.reserve(t.size());
  size_t line_start = 0;
  for (size_t i = 0; i <= t.size(); ++i) {
    if (i == t.size() || t[i] == '\n') {
      std::string line = t.substr(line_start, i - line_start);
      size_t k = line.find_first_not_of(" \t");
      if (k != std::string::npos && k > 0 && line[k] == '{' && k + 1 < line.size() &&
          (line[k + 1] == '#' || line[k + 1] == '%' || line[k + 1] == '-'))
        line = line.substr(k);
      out += line;
      if (i < t.size()) out += '\n';
      line_start = i + 1;
    }
  }
  // trim_blocks: the newline right after %} #} or -}.
  std::string trimmed;
  trimmed.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    trimmed += out[i];
    if (out[i] == '}' && i > 0 && (out[i - 1] == '%' || out[i - 1] == '#' || out[i - 1] == '-') && i + 1 < out.size() &&
        out[i + 1] == '\n')
      ++i;
  }
  return trimmed;
}

class Lexer {
 public:
  Lexer(const std::string& src, const std::string& where) : src_(preprocess(src)), where_(where) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      Tok last = tokens_.empty() ? Tok::Text : tokens_.back().type;
      bool after_tag = tokens_.empty() || last == Tok::CloseStmt || last == Tok::CloseExpr || last == Tok::Comment;
      if (after_tag) {
        size_t start = pos_;
        while (pos_ < src_.size() && !(src_[pos_] == '{' && pos_ + 1 < src_.size() &&
                                       (src_[pos_ + 1] == '%' || src_[pos_ + 1] == '{' || src_[pos_ + 1] == '#')))
          advance();
        if (pos_ > start) {
          push(Tok::Text, src_.substr(start, pos_ - start));
          continue;
        }
      }
      if (starts("{#")) {
        comment();
        continue;
      }
      if (starts("{%-") || starts("{{-")) {
        strip_trailing_whitespace();
        push(src_[pos_ + 1] == '%' ? Tok::OpenStmt : Tok::OpenExpr, src_.substr(pos_, 2));
        pos_ += 3;
        continue;
      }
      skip_space();
      if (pos_ >= src_.size()) break;
      if (starts("-%}") || starts("-}}")) {
        push(src_[pos_ + 1] == '%' ? Tok::CloseStmt : Tok::CloseExpr, src_.substr(pos_ + 1, 2));
        pos_ += 3;
        skip_space();
        continue;
      }
      char c = src_[pos_];
      if (c == '-' || c == '+') {
        if (tokens_.empty() || tokens_.back().type == Tok::Text) fail(std::string("unexpected character '") + c + "'");
        Tok t = tokens_.back().type;
        bool binary = t == Tok::Ident || t == Tok::Number || t == Tok::String || t == Tok::RParen || t == Tok::RBracket;
        if (!binary) {
          ++pos_;
          std::string num = digits();
          if (!num.empty() && pos_ + 1 < src_.size() && src_[pos_] == '.' &&
              std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
            ++pos_;
            num += "." + digits();
          }
          push(num.empty() ? Tok::UnarySign : Tok::Number, std::string(1, c) + num);
          continue;
        }
      }
      if (symbol()) continue;
      if (c == '\'' || c == '"') {
        ++pos_;
        push(Tok::String, string_body(c));
        ++pos_;
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c))) {
        std::string num = digits();
        if (!(tokens_.size() && tokens_.back().type == Tok::Dot) && pos_ + 1 < src_.size() && src_[pos_] == '.' &&
            std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
          ++pos_;
          num += "." + digits();
        }
        push(Tok::Number, num);
        continue;
      }
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
        size_t start = pos_;
        while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
          ++pos_;
        push(Tok::Ident, src_.substr(start, pos_ - start));
        continue;
      }
      fail(std::string("unexpected character '") + c + "'");
    }
    return tokens_;
  }

 private:
  bool starts(const char* s) const { return src_.compare(pos_, std::strlen(s), s) == 0; }
  void advance() {
    if (src_[pos_] == '\n') ++line_;
    ++pos_;
  }
  void push(Tok t, std::string v) { tokens_.push_back({t, std::move(v), line_}); }
  [[noreturn]] void fail(const std::string& what) {
    throw Error("chat template syntax error: " + what, where_ + ":" + std::to_string(line_),
                "fix the template (Jinja syntax as transformers renders it)");
  }
  void skip_space() {
    while (pos_ < src_.size()) {
      size_t k = pos_;
      if (!js_space(unicode::next_cp(src_, k))) break;
      while (pos_ < k) advance();
    }
  }
  void strip_trailing_whitespace() {
    if (tokens_.empty() || tokens_.back().type != Tok::Text) return;
    std::string& t = tokens_.back().value;
    while (!t.empty()) {
      size_t i = t.size() - 1;
      while (i > 0 && (static_cast<unsigned char>(t[i]) & 0xC0) == 0x80) --i;
      size_t k = i;
      if (!js_space(unicode::next_cp(t, k))) break;
      t.resize(i);
    }
    if (t.empty()) tokens_.pop_back();
  }
  void comment() {
    pos_ += 2;
    bool strip_before = pos_ < src_.size() && src_[pos_] == '-';
    if (strip_before) ++pos_;
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) fail("comment {# is never closed with #}");
    std::string body = src_.substr(pos_, end - pos_);
    bool strip_after = !body.empty() && body.back() == '-';
    while (pos_ < end) advance();
    pos_ = end + 2;
    if (strip_before) strip_trailing_whitespace();
    push(Tok::Comment, body);
    if (strip_after) skip_space();
  }
  std::string digits() {
    size_t start = pos_;
    while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
    return src_.substr(start, pos_ - start);
  }
  bool symbol() {
    static const std::pair<const char*, Tok> table[] = {{"{%", Tok::OpenStmt},      {"%}", Tok::CloseStmt},
                                                        {"{{", Tok::OpenExpr},      {"}}", Tok::CloseExpr},
                                                        {"(", Tok::LParen},         {")", Tok::RParen},
                                                        {"{", Tok::LBrace},         {"}", Tok::RBrace},
                                                        {"[", Tok::LBracket},       {"]", Tok::RBracket},
                                                        {",", Tok::Comma},          {".", Tok::Dot},
                                                        {":", Tok::Colon},          {"|", Tok::Pipe},
                                                        {"<=", Tok::Comparison},    {">=", Tok::Comparison},
                                                        {"==", Tok::Comparison},    {"!=", Tok::Comparison},
                                                        {"<", Tok::Comparison},     {">", Tok::Comparison},
                                                        {"+", Tok::Additive},       {"-", Tok::Additive},
                                                        {"~", Tok::Additive},       {"**", Tok::Power},
                                                        {"*", Tok::Multiplicative}, {"//", Tok::Multiplicative},
                                                        {"/", Tok::Multiplicative}, {"%", Tok::Multiplicative},
                                                        {"=", Tok::Equals}};
    for (const auto& [seq, type] : table) {
      if (type == Tok::CloseExpr && brace_depth_ > 0) continue;  // "}}" closing an object literal
      if (!starts(seq)) continue;
      push(type, seq);
      if (type == Tok::OpenExpr)
        brace_depth_ = 0;
      else if (type == Tok::LBrace)
        ++brace_depth_;
      else if (type == Tok::RBrace)
        --brace_depth_;
      pos_ += std::strlen(seq);
      return true;
    }
    return false;
  }
  std::string string_body(char quote) {
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) fail("string literal is never closed");
      char c = src_[pos_];
      if (c == quote) return out;
      if (c == '\\') {
        ++pos_;
        if (pos_ >= src_.size()) fail("unexpected end of input in a string");
        char e = src_[pos_++];
        if (e == 'x' || e == 'u') {
          size_t len = e == 'x' ? 2 : 4;
          std::string hex = src_.substr(pos_, len);
          if (hex.size() != len || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
            fail(std::string("invalid escape \\") + e + hex);
          unicode::append_utf8(out, static_cast<char32_t>(std::stoul(hex, nullptr, 16)));
          pos_ += len;
          continue;
        }
        const char* from = "ntrbfv'\"\\";
        const char* to = "\n\t\r\b\f\v'\"\\";
        const char* hit = std::strchr(from, e);
        if (!hit || e == '\0') fail(std::string("unknown escape \\") + e);
        out += to[hit - from];
        continue;
      }
      out += c;
      advance();
    }
  }

  std::string src_, where_;
  size_t pos_ = 0;
  int line_ = 1, brace_depth_ = 0;
  std::vector<Token> tokens_;
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& where) : t_(std::move(tokens)), where_(where) {}

  Nodes program() {
    Nodes out;
    while (cur_ < t_.size()) out.push_back(any());
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    int line = cur_ < t_.size() ? t_[cur_].line : (t_.empty() ? 1 : t_.back().line);
    throw Error("chat template syntax error: " + what, where_ + ":" + std::to_string(line),
                "fix the template (Jinja syntax as transformers renders it)");
  }
  bool is(Tok t) const { return cur_ < t_.size() && t_[cur_].type == t; }
  bool ident(const char* name, size_t ahead = 0) const {
    return cur_ + ahead < t_.size() && t_[cur_ + ahead].type == Tok::Ident && t_[cur_ + ahead].value == name;
  }
  bool statement(std::initializer_list<const char*> names) const {
    if (!is(Tok::OpenStmt)) return false;
    for (const char* n : names)
      if (ident(n, 1)) return true;
    return false;
  }
  void expect(Tok t, const char* what) {
    if (!is(t))
      fail(std::string("expected ") + what + (cur_ < t_.size() ? ", found '" + t_[cur_].value + "'" : " at the end"));
    ++cur_;
  }
  void expect_ident(const char* name) {
    if (!ident(name)) fail(std::string("expected '") + name + "'");
    ++cur_;
  }
  NodePtr node(Node::Type type) { return std::make_unique<Node>(type, cur_ < t_.size() ? t_[cur_].line : 0); }

  // Blocks and expressions nest a bounded depth, so that a hostile template cannot overflow the stack.
  static constexpr int kMaxNesting = 100;
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxNesting) p.fail("blocks or expressions nest deeper than " + std::to_string(kMaxNesting));
    }
    ~Nest() { --p.depth_; }
  };

  NodePtr any() {
    Nest nest(*this);
    const Token& tok = t_[cur_];
    switch (tok.type) {
      case Tok::Comment: {
        ++cur_;
        auto n = node(Node::Type::Text);  // comments render nothing
        return n;
      }
      case Tok::Text: {
        auto n = node(Node::Type::Text);
        n->name = tok.value;
        ++cur_;
        return n;
      }
      case Tok::OpenStmt:
        return jinja_statement();
      case Tok::OpenExpr: {
        ++cur_;
        auto n = node(Node::Type::Output);
        n->a = expression();
        expect(Tok::CloseExpr, "'}}'");
        return n;
      }
      default:
        fail("unexpected '" + tok.value + "'");
    }
  }

  void block_until(Nodes& body, std::initializer_list<const char*> ends) {
    while (!statement(ends)) {
      if (cur_ >= t_.size()) {
        std::string list;
        for (const char* e : ends) list += std::string(list.empty() ? "" : " or ") + "{% " + e + " %}";
        fail("missing " + list);
      }
      body.push_back(any());
    }
  }

  NodePtr jinja_statement() {
    expect(Tok::OpenStmt, "'{%'");
    if (!is(Tok::Ident)) fail("expected a statement name after {%");
    std::string name = t_[cur_].value;
    ++cur_;
    NodePtr n;
    if (name == "set") {
      n = set_statement();
    } else if (name == "if") {
      n = if_statement();
      expect(Tok::OpenStmt, "'{%'");
      expect_ident("endif");
      expect(Tok::CloseStmt, "'%}'");
    } else if (name == "for") {
      n = for_statement();
      expect(Tok::OpenStmt, "'{%'");
      expect_ident("endfor");
      expect(Tok::CloseStmt, "'%}'");
    } else if (name == "macro") {
      n = node(Node::Type::Macro);
      auto callee = primary();
      if (callee->type != Node::Type::Identifier) fail("expected a macro name");
      n->name = callee->name;
      n->items = arguments();
      expect(Tok::CloseStmt, "'%}'");
      block_until(n->body, {"endmacro"});
      expect(Tok::OpenStmt, "'{%'");
      expect_ident("endmacro");
      expect(Tok::CloseStmt, "'%}'");
    } else if (name == "break" || name == "continue") {
      n = node(name == "break" ? Node::Type::Break : Node::Type::Continue);
      expect(Tok::CloseStmt, "'%}'");
    } else if (name == "filter") {
      n = node(Node::Type::FilterBlock);
      n->a = filter_call();
      expect(Tok::CloseStmt, "'%}'");
      block_until(n->body, {"endfilter"});
      expect(Tok::OpenStmt, "'{%'");
      expect_ident("endfilter");
      expect(Tok::CloseStmt, "'%}'");
    } else {
      --cur_;
      throw Error("chat template uses the unsupported statement {% " + name + " %}",
                  where_ + ":" + std::to_string(t_[cur_].line),
                  "supported: if/elif/else, for (with loop.*, else, break, continue), set (incl. namespace and "
                  "block set), macro, filter");
    }
    return n;
  }

  NodePtr set_statement() {
    auto n = node(Node::Type::Set);
    n->a = expression_sequence(false);
    if (is(Tok::Equals)) {
      ++cur_;
      n->b = expression_sequence(false);
    } else {
      expect(Tok::CloseStmt, "'%}'");
      block_until(n->body, {"endset"});
      expect(Tok::OpenStmt, "'{%'");
      expect_ident("endset");
    }
    expect(Tok::CloseStmt, "'%}'");
    return n;
  }

  NodePtr if_statement() {
    auto n = node(Node::Type::If);
    n->a = expression();
    expect(Tok::CloseStmt, "'%}'");
    block_until(n->body, {"elif", "else", "endif"});
    if (statement({"elif"})) {
      cur_ += 2;
      n->other.push_back(if_statement());
    } else if (statement({"else"})) {
      cur_ += 2;
      expect(Tok::CloseStmt, "'%}'");
      block_until(n->other, {"endif"});
    }
    return n;
  }

  NodePtr for_statement() {
    auto n = node(Node::Type::For);
    n->a = expression_sequence(true);
    if (n->a->type != Node::Type::Identifier && n->a->type != Node::Type::TupleLit)
      fail("expected a loop variable name or tuple after 'for'");
    if (!ident("in")) fail("expected 'in' after the loop variable");
    ++cur_;
    n->b = expression();
    expect(Tok::CloseStmt, "'%}'");
    block_until(n->body, {"endfor", "else"});
    if (statement({"else"})) {
      cur_ += 2;
      expect(Tok::CloseStmt, "'%}'");
      block_until(n->other, {"endfor"});
    }
    return n;
  }

  NodePtr expression_sequence(bool primary_only) {
    auto first = primary_only ? primary() : expression();
    if (!is(Tok::Comma)) return first;
    auto tuple = node(Node::Type::TupleLit);
    tuple->items.push_back(std::move(first));
    while (is(Tok::Comma)) {
      ++cur_;
      tuple->items.push_back(primary_only ? primary() : expression());
      if (!is(Tok::Comma)) break;
    }
    return tuple;
  }

  NodePtr expression() {
    Nest nest(*this);
    auto a = logical_or();
    if (!ident("if")) return a;
    ++cur_;
    auto test = logical_or();
    if (ident("else")) {
      ++cur_;
      auto n = node(Node::Type::Ternary);
      n->a = std::move(test);
      n->b = std::move(a);
      n->c = expression();
      return n;
    }
    auto n = node(Node::Type::Select);
    n->a = std::move(a);
    n->b = std::move(test);
    return n;
  }

  NodePtr binary(const std::string& op, NodePtr l, NodePtr r) {
    auto n = node(Node::Type::Binary);
    n->name = op;
    n->a = std::move(l);
    n->b = std::move(r);
    return n;
  }

  NodePtr logical_or() {
    auto left = logical_and();
    while (ident("or")) {
      ++cur_;
      left = binary("or", std::move(left), logical_and());
    }
    return left;
  }
  NodePtr logical_and() {
    auto left = logical_not();
    while (ident("and")) {
      ++cur_;
      left = binary("and", std::move(left), logical_not());
    }
    return left;
  }
  NodePtr logical_not() {
    if (ident("not")) {
      ++cur_;
      auto n = node(Node::Type::Unary);
      n->name = "not";
      n->a = logical_not();
      return n;
    }
    return comparison();
  }
  NodePtr comparison() {
    auto left = additive();
    while (true) {
      std::string op;
      if (ident("not") && ident("in", 1)) {
        op = "not in";
        cur_ += 2;
      } else if (ident("in")) {
        op = "in";
        ++cur_;
      } else if (is(Tok::Comparison)) {
        op = t_[cur_++].value;
      } else {
        break;
      }
      left = binary(op, std::move(left), additive());
    }
    return left;
  }
  NodePtr additive() {
    auto left = multiplicative();
    while (is(Tok::Additive)) {
      std::string op = t_[cur_++].value;
      left = binary(op, std::move(left), multiplicative());
    }
    return left;
  }
  NodePtr multiplicative() {
    auto left = power();
    while (is(Tok::Multiplicative)) {
      std::string op = t_[cur_++].value;
      left = binary(op, std::move(left), power());
    }
    return left;
  }
  NodePtr power() {
    auto left = test();
    while (is(Tok::Power)) {
      ++cur_;
      left = binary("**", std::move(left), test());
    }
    return left;
  }
  NodePtr test() {
    auto operand = filter();
    while (ident("is")) {
      ++cur_;
      auto n = node(Node::Type::Test);
      if (ident("not")) {
        n->negate = true;
        ++cur_;
      }
      auto name = primary();
      if (name->type != Node::Type::Identifier &&
          !(name->type == Node::Type::Literal && name->literal.is(Value::Kind::None)))
        fail("expected a test name after 'is'");
      n->name = name->type == Node::Type::Identifier ? name->name : "none";
      if (is(Tok::LParen)) n->items = arguments();  // e.g. `is divisibleby(3)`, `is equalto(x)`
      n->a = std::move(operand);
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr filter_call() {
    auto name = primary();
    if (name->type != Node::Type::Identifier) fail("expected a filter name after '|'");
    auto n = node(Node::Type::Filter);
    n->name = name->name;
    if (is(Tok::LParen)) {
      n->items = arguments();
      n->computed = true;  // called with parentheses
    }
    return n;
  }
  NodePtr filter() {
    auto operand = unary_sign();
    while (is(Tok::Pipe)) {
      ++cur_;
      auto f = filter_call();
      f->a = std::move(operand);
      operand = std::move(f);
    }
    return operand;
  }
  NodePtr unary_sign() {
    if ((is(Tok::UnarySign) || is(Tok::Additive)) && (t_[cur_].value == "-" || t_[cur_].value == "+")) {
      auto n = node(Node::Type::Unary);
      n->name = t_[cur_++].value;
      n->a = unary_sign();
      return n;
    }
    return call_member();
  }
  NodePtr call_member() {
    auto m = member(primary());
    while (is(Tok::LParen)) {
      auto call = node(Node::Type::Call);
      call->a = std::move(m);
      call->items = arguments();
      m = member(std::move(call));
    }
    return m;
  }
  Nodes arguments() {
    expect(Tok::LParen, "'('");
    Nodes args;
    while (!is(Tok::RParen)) {
      if (cur_ >= t_.size()) fail("missing ')'");
      NodePtr arg = expression();
      if (is(Tok::Equals)) {
        if (arg->type != Node::Type::Identifier) fail("keyword argument name must be an identifier");
        ++cur_;
        auto kw = node(Node::Type::Kwarg);
        kw->name = arg->name;
        kw->a = expression();
        arg = std::move(kw);
      }
      args.push_back(std::move(arg));
      if (is(Tok::Comma))
        ++cur_;
      else if (!is(Tok::RParen))
        fail("expected ',' or ')' in an argument list");
    }
    ++cur_;
    return args;
  }
  NodePtr member(NodePtr object) {
    while (is(Tok::Dot) || is(Tok::LBracket)) {
      bool computed = is(Tok::LBracket);
      ++cur_;
      auto n = node(Node::Type::Member);
      n->computed = computed;
      if (computed) {
        n->b = subscript();
        expect(Tok::RBracket, "']'");
      } else {
        n->b = primary();
        if (n->b->type != Node::Type::Identifier &&
            !(n->b->type == Node::Type::Literal && n->b->literal.is(Value::Kind::Int)))
          fail("expected a name after '.'");
      }
      n->a = std::move(object);
      object = std::move(n);
    }
    return object;
  }
  NodePtr subscript() {  // expr, or a slice start:stop:step with any part missing
    NodePtr parts[3];
    int k = 0;
    bool slice = false;
    while (!is(Tok::RBracket)) {
      if (cur_ >= t_.size()) fail("missing ']'");
      if (is(Tok::Colon)) {
        slice = true;
        ++cur_;
        if (++k > 2) fail("too many ':' in a slice");
      } else {
        parts[k] = expression();
      }
    }
    if (!slice) {
      if (!parts[0]) fail("empty subscript []");
      return std::move(parts[0]);
    }
    auto n = node(Node::Type::Slice);
    n->a = std::move(parts[0]);
    n->b = std::move(parts[1]);
    n->c = std::move(parts[2]);
    return n;
  }
  NodePtr primary() {
    if (cur_ >= t_.size()) fail("unexpected end of the template");
    const Token tok = t_[cur_++];
    switch (tok.type) {
      case Tok::Number: {
        auto n = node(Node::Type::Literal);
        errno = 0;  // a literal past the range of a 64-bit integer or a double is the template's error
        n->literal = tok.value.find('.') != std::string::npos
                         ? Value::number(std::strtod(tok.value.c_str(), nullptr))
                         : Value::integer(std::strtoll(tok.value.c_str(), nullptr, 10));
        if (errno == ERANGE) fail("the number " + tok.value.substr(0, 40) + " is out of range");
        return n;
      }
      case Tok::String: {
        auto n = node(Node::Type::Literal);
        std::string s = tok.value;
        while (is(Tok::String)) s += t_[cur_++].value;  // adjacent literals concatenate
        n->literal = Value::string(s);
        return n;
      }
      case Tok::Ident: {
        auto n = node(Node::Type::Identifier);
        n->name = tok.value;
        return n;
      }
      case Tok::LParen: {
        auto e = expression_sequence(false);
        expect(Tok::RParen, "')'");
        return e;
      }
      case Tok::LBracket: {
        auto n = node(Node::Type::ArrayLit);
        while (!is(Tok::RBracket)) {
          if (cur_ >= t_.size()) fail("missing ']'");
          n->items.push_back(expression());
          if (is(Tok::Comma)) ++cur_;
        }
        ++cur_;
        return n;
      }
      case Tok::LBrace: {
        auto n = node(Node::Type::ObjectLit);
        while (!is(Tok::RBrace)) {
          if (cur_ >= t_.size()) fail("missing '}'");
          n->items.push_back(expression());
          expect(Tok::Colon, "':' in an object literal");
          n->items.push_back(expression());
          if (is(Tok::Comma)) ++cur_;
        }
        ++cur_;
        return n;
      }
      default:
        --cur_;
        fail("unexpected '" + tok.value + "'");
    }
  }

  std::vector<Token> t_;
  std::string where_;
  size_t cur_ = 0;
  int depth_ = 0;
};

}  // namespace

Nodes parse_template(const std::string& source, const std::string& where) {
  // The lexer walks code points: bytes that are not UTF-8 would be read past (found by tests/fuzz/fuzz_chat_template).
  if (!unicode::is_valid_utf8(source))
    throw Error("the template is not valid UTF-8", where, "a chat template is text: check the file's encoding");
  return Parser(Lexer(source, where).run(), where).program();
}

}  // namespace rlaif::jinja
