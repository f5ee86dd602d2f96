#include "imagescore/stats/logistic.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "imagescore/core/error.hpp"
#include "imagescore/core/random.hpp"

namespace imagescore {
namespace {

// log(1 + exp(z)) without overflow.
double softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

double objective(const LogisticModel& m, const std::vector<double>& x, std::size_t d, const std::vector<bool>& y,
                 double penalty) {
  double loss = log_loss(m, x, d, y) * double(y.size());
  for (double w : m.weights) loss += penalty / 2 * w * w;
  return loss;
}

// Solves the symmetric positive definite system a x = b (Cholesky).
std::vector<double> solve_spd(std::vector<double> a, std::vector<double> b, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    double diag = a[j * n + j];
    for (std::size_t k = 0; k < j; ++k) diag -= a[j * n + k] * a[j * n + k];
    if (!(diag > 0)) fail("logistic regression", "the Hessian is not positive definite (constant features?)");
    a[j * n + j] = std::sqrt(diag);
    for (std::size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / a[j * n + j];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < i; ++k) b[i] -= a[i * n + k] * b[k];
    b[i] /= a[i * n + i];
  }
  for (std::size_t i = n; i-- > 0;) {
    for (std::size_t k = i + 1; k < n; ++k) b[i] -= a[k * n + i] * b[k];
    b[i] /= a[i * n + i];
  }
  return b;
}

}  // namespace

double LogisticModel::predict(const double* x) const {
  double z = bias;
  for (std::size_t j = 0; j < weights.size(); ++j) z += weights[j] * x[j];
  return z;
}

double log_loss(const LogisticModel& m, const std::vector<double>& x, std::size_t d, const std::vector<bool>& y) {
  double loss = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double z = m.predict(&x[i * d]);
    loss += y[i] ? softplus(-z) : softplus(z);
  }
  return loss / double(y.size());
}

LogisticModel fit_logistic(const std::vector<double>& x, std::size_t d, const std::vector<bool>& y, double penalty) {
  if (!(penalty > 0)) fail_option("penalty", "must be > 0");
  const std::size_t n = y.size(), p = d + 1;  // the bias last
  LogisticModel m;
  m.weights.assign(d, 0.0);
  double current = objective(m, x, d, y, penalty);
  for (int iteration = 0; iteration < 100; ++iteration) {
    std::vector<double> gradient(p, 0.0), hessian(p * p, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      const double* xi = &x[i * d];
      const double q = 1 / (1 + std::exp(-m.predict(xi)));
      const double r = q - (y[i] ? 1.0 : 0.0), w = q * (1 - q);
      for (std::size_t a = 0; a < p; ++a) {
        const double xa = a < d ? xi[a] : 1.0;
        gradient[a] += r * xa;
        for (std::size_t b = 0; b <= a; ++b) hessian[a * p + b] += w * xa * (b < d ? xi[b] : 1.0);
      }
    }
    for (std::size_t a = 0; a < d; ++a) {
      gradient[a] += penalty * m.weights[a];
      hessian[a * p + a] += penalty;
    }
    hessian[(p - 1) * p + (p - 1)] += 1e-12;  // keeps the bias's row positive with one class only
    for (std::size_t a = 0; a < p; ++a)
      for (std::size_t b = 0; b < a; ++b) hessian[b * p + a] = hessian[a * p + b];
    const auto step = solve_spd(hessian, gradient, p);
    // Newton's step, halved until the objective decreases.
    for (double scale = 1; scale > 1e-10; scale /= 2) {
      LogisticModel next = m;
      for (std::size_t a = 0; a < d; ++a) next.weights[a] -= scale * step[a];
      next.bias -= scale * step[d];
      const double value = objective(next, x, d, y, penalty);
      if (value <= current) {
        const bool converged = current - value <= 1e-12 * std::max(1.0, current);
        m = next;
        current = value;
        if (converged) return m;
        break;
      }
      if (scale <= 2e-10) return m;
    }
  }
  return m;
}

LearnedFusion fit_learned_fusion(const ScoreTable& table, const std::vector<std::string>& columns,
                                 const FusionFitOptions& options) {
  if (columns.empty()) fail_option("columns", "give the columns to combine");
  if (!table.has_labels() || table.rows.empty()) fail(table.path, "fitting a combination needs labelled rows");
  if (options.folds < 2) fail_option("folds", "must be >= 2");
  LearnedFusion f;
  f.columns = columns;
  f.fitted_on = table.path;
  const std::size_t n = table.rows.size(), d = columns.size();
  std::vector<std::size_t> at;
  for (const auto& c : columns) at.push_back(table.column(c));
  std::vector<bool> y(n);
  for (std::size_t i = 0; i < n; ++i) {
    y[i] = table.rows[i].label == table.rows[i].pred;
    f.errors += !y[i];
  }
  f.images = n;
  if (f.errors < options.folds || n - f.errors < options.folds)
    fail(table.path, "too few wrong (" + std::to_string(f.errors) + ") or right predictions to fit a combination with " +
                         std::to_string(options.folds) + " folds");
  // z-scores of each column.
  std::vector<double> x(n * d);
  for (std::size_t c = 0; c < d; ++c) {
    double mean = 0, squares = 0;
    for (const auto& row : table.rows) mean += row.values[at[c]] / double(n);
    for (const auto& row : table.rows) squares += (row.values[at[c]] - mean) * (row.values[at[c]] - mean) / double(n);
    const double deviation = std::sqrt(squares);
    // (The mean of equal values can differ from them in the last bit.)
    if (!(deviation > 1e-12 * std::max(1.0, std::fabs(mean))))
      fail(table.path, "column '" + columns[c] + "' is constant: it cannot be combined");
    f.means.push_back(mean);
    f.deviations.push_back(deviation);
    for (std::size_t i = 0; i < n; ++i) x[i * d + c] = (table.rows[i].values[at[c]] - mean) / deviation;
  }
  // Folds: right and wrong rows each dealt round-robin in a seeded order.
  std::vector<std::size_t> fold(n);
  for (bool right : {true, false}) {
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < n; ++i)
      if (y[i] == right) rows.push_back(i);
    const auto order = seeded_permutation(rows.size(), mix_seed(options.seed, right));
    for (std::size_t k = 0; k < rows.size(); ++k) fold[rows[order[k]]] = k % options.folds;
  }
  double best = std::numeric_limits<double>::infinity();
  for (double penalty : options.penalties) {
    double loss = 0;
    for (std::size_t held = 0; held < options.folds; ++held) {
      std::vector<double> train_x, test_x;
      std::vector<bool> train_y, test_y;
      for (std::size_t i = 0; i < n; ++i) {
        auto& xs = fold[i] == held ? test_x : train_x;
        xs.insert(xs.end(), x.begin() + long(i * d), x.begin() + long((i + 1) * d));
        (fold[i] == held ? test_y : train_y).push_back(y[i]);
      }
      loss += log_loss(fit_logistic(train_x, d, train_y, penalty), test_x, d, test_y) * double(test_y.size()) / double(n);
    }
    if (loss < best) {
      best = loss;
      f.penalty = penalty;
    }
  }
  f.folds = options.folds;
  const auto model = fit_logistic(x, d, y, f.penalty);
  f.weights = model.weights;
  f.bias = model.bias;
  return f;
}

}  // namespace imagescore
