// Normalisation statistics, seeded permutations and the batch loader.
#include <algorithm>
#include <charconv>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "data_detail.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/core/progress.hpp"

namespace imagescore {
namespace {

// Crops (a window of the image padded with 0 after normalisation, i.e. the channel mean
// before it) and mirrors the crop, normalising each pixel with `normalise(channel, v)`.
template <typename Pixel, typename Normalise>
void crop_and_flip(const Pixel* chw, float* out, const ImageShape& shape, const AugmentationDraw& draw,
                   const Normalise& normalise) {
  const int height = shape.height, width = shape.width;
  for (int c = 0; c < shape.channels; ++c) {
    const Pixel* plane = chw + std::size_t(c) * height * width;
    for (int y = 0; y < height; ++y) {
      const int source_y = y + draw.shift_y;
      for (int x = 0; x < width; ++x) {
        const int source_x = (draw.flip ? width - 1 - x : x) + draw.shift_x;
        const bool inside = source_y >= 0 && source_y < height && source_x >= 0 && source_x < width;
        *out++ = inside ? normalise(c, plane[source_y * width + source_x]) : 0.0f;
      }
    }
  }
}

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

// Runs task(0..count-1) on up to `threads` threads. If tasks throw, the exception of the
// lowest-numbered failing task is rethrown, so the error does not depend on timing.
template <typename Task>
void parallel_for(std::size_t count, int threads, const Task& task) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::size_t error_task = count;
  std::exception_ptr error;
  auto work = [&] {
    for (std::size_t i; !failed && (i = next++) < count;) {
      try {
        task(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (i < error_task) {
          error_task = i;
          error = std::current_exception();
        }
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  const std::size_t extra = std::min<std::size_t>(count, std::size_t(resolve_threads(threads))) - (count > 0);
  for (std::size_t t = 0; t < extra; ++t) pool.emplace_back(work);
  work();
  for (std::thread& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

AugmentationDraw draw_augmentation(const Augmentation& augmentation, std::uint64_t seed) {
  AugmentationDraw draw;
  SplitMix64 rng(seed);
  const int pad = augmentation.crop_padding;
  if (pad > 0) {
    draw.shift_y = int(rng.below(2 * std::uint64_t(pad) + 1)) - pad;
    draw.shift_x = int(rng.below(2 * std::uint64_t(pad) + 1)) - pad;
  }
  draw.flip = augmentation.horizontal_flip && (rng.next() >> 63) != 0;
  return draw;
}

void apply_augmentation(const float* image, float* out, const ImageShape& shape, const AugmentationDraw& draw) {
  crop_and_flip(image, out, shape, draw, [](int, float v) { return v; });
}

Normalization compute_normalization(const ImageSource& source, int threads) {
  const ImageShape shape = source.shape();
  const std::size_t count = source.size();
  if (count == 0) fail(source.spec(), "no images to compute the normalisation from");
  const std::size_t channels = std::size_t(shape.channels);
  const std::size_t plane = std::size_t(shape.height) * shape.width;
  // Exact integer sums per fixed chunk of images (sum and sum of squares per channel),
  // added up in chunk order: the result is the same for any thread count.
  constexpr std::size_t kChunk = 256;
  const std::size_t chunks = (count + kChunk - 1) / kChunk;
  std::vector<std::uint64_t> sums(chunks * channels * 2, 0);
  parallel_for(chunks, threads, [&](std::size_t chunk) {
    check_interrupted();  // a pass over a large image folder takes minutes
    std::vector<std::uint8_t> image(shape.pixels());
    std::uint64_t* chunk_sums = &sums[chunk * channels * 2];
    for (std::size_t i = chunk * kChunk; i < std::min(count, (chunk + 1) * kChunk); ++i) {
      source.read(i, image.data());
      for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t p = 0; p < plane; ++p) {
          const std::uint64_t v = image[c * plane + p];
          chunk_sums[2 * c] += v;
          chunk_sums[2 * c + 1] += v * v;
        }
    }
  });
  Normalization norm;
  const double values = double(count) * double(plane);
  for (std::size_t c = 0; c < channels; ++c) {
    double sum = 0, sum_squares = 0;
    for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
      sum += double(sums[(chunk * channels + c) * 2]);
      sum_squares += double(sums[(chunk * channels + c) * 2 + 1]);
    }
    const double mean = sum / values / 255.0;
    const double variance = std::max(0.0, sum_squares / values / (255.0 * 255.0) - mean * mean);
    norm.mean.push_back(float(mean));
    // A constant channel normalises to 0 instead of dividing by zero.
    norm.std.push_back(variance > 0 ? float(std::sqrt(variance)) : 1.0f);
  }
  return norm;
}

Normalization parse_normalization(const std::string& text, int channels) {
  const std::size_t c = std::size_t(channels);
  if (text == "none") return {std::vector<float>(c, 0.f), std::vector<float>(c, 1.f)};
  if (text == "imagenet") {
    if (channels != 3) fail_option("normalize", "imagenet needs 3 input channels");
    return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
  }
  const auto slash = text.find('/');
  if (slash == std::string::npos)
    fail_option("normalize", "expected auto, none, imagenet or MEANS/STDS, got '" + text + "'");
  auto parse_list = [&](const std::string& list) {
    std::vector<float> values;
    for (std::size_t start = 0;;) {
      const std::size_t comma = std::min(list.find(',', start), list.size());
      const std::string item = list.substr(start, comma - start);
      float value = 0;
      if (!parse_number(item, value) || !std::isfinite(value)) fail_option("normalize", "'" + item + "' is not a number");
      values.push_back(value);
      if (comma == list.size()) break;
      start = comma + 1;
    }
    if (values.size() != c) fail_option("normalize", "expected " + std::to_string(c) + " values per list");
    return values;
  };
  Normalization n{parse_list(text.substr(0, slash)), parse_list(text.substr(slash + 1))};
  for (float s : n.std)
    if (!(s > 0)) fail_option("normalize", "standard deviations must be > 0");
  return n;
}

Normalization normalization_for(const std::string& text, const ImageSource& source, int threads) {
  return text == "auto" ? compute_normalization(source, threads) : parse_normalization(text, source.shape().channels);
}

ImageShape parse_image_shape(const std::string& text) {
  int sides[3] = {0, 0, 0};
  const char* at = text.data();
  const char* end = text.data() + text.size();
  for (int k = 0; k < 3; ++k) {
    auto [ptr, ec] = std::from_chars(at, end, sides[k]);
    const bool last = k == 2;
    if (ec != std::errc() || sides[k] < 1 || sides[k] > 16384 || (last ? ptr != end : ptr == end || *ptr != 'x'))
      fail_option("input", "expected CxHxW (for example 3x224x224), got '" + text + "'");
    at = ptr + 1;
  }
  return {sides[0], sides[1], sides[2]};
}

struct BatchLoader::Impl {
  // A batch being decoded (or ready) and what is left to do on it.
  struct Slot {
    Batch batch;
    std::size_t remaining = 0;
    std::exception_ptr error;
    std::size_t error_position = 0;  // keeps the error of the first failing image
  };
  struct Task {
    Slot* slot;
    std::size_t position;
  };

  const ImageSource& source;
  const LoaderOptions options;
  const ImageShape shape;
  std::vector<std::size_t> order;
  std::size_t num_batches = 0;
  std::vector<std::vector<float>> lookup;  // per channel: normalised value of each byte

  // Batch b lives in slots[b % 2]: one handed to the consumer, one being decoded.
  Slot slots[2];
  std::size_t scheduled = 0;  // batches handed to the workers so far
  std::size_t delivered = 0;  // batches returned by next()
  std::exception_ptr failure;

  std::mutex mutex;
  std::condition_variable work_ready;  // tasks were queued or stopping was set
  std::condition_variable batch_done;  // a slot's remaining count reached zero
  std::deque<Task> tasks;
  bool stopping = false;
  std::vector<std::thread> workers;

  Impl(const ImageSource& source_, const Normalization& norm, LoaderOptions options_)
      : source(source_), options(options_), shape(source_.shape()) {
    if (options.batch_size == 0) fail("batch loader", "batch size must be at least 1");
    if (options.augmentation.crop_padding < 0)
      fail("batch loader", "crop padding must be >= 0, got " + std::to_string(options.augmentation.crop_padding));
    if (norm.mean.size() != std::size_t(shape.channels) || norm.std.size() != std::size_t(shape.channels))
      fail(source.spec(), "normalisation has " + std::to_string(norm.mean.size()) + " channels but the images have " +
                              std::to_string(shape.channels));
    for (std::size_t c = 0; c < norm.mean.size(); ++c) {
      if (!(norm.std[c] > 0)) fail(source.spec(), "normalisation standard deviation must be positive");
      std::vector<float> values(256);
      for (int v = 0; v < 256; ++v) values[v] = float((v / 255.0 - norm.mean[c]) / norm.std[c]);
      lookup.push_back(std::move(values));
    }
    const std::size_t n = source.size();
    if (options.shuffle) {
      order = seeded_permutation(n, mix_seed(options.seed, options.epoch));
    } else {
      order.resize(n);
      std::iota(order.begin(), order.end(), std::size_t(0));
    }
    num_batches = (n + options.batch_size - 1) / options.batch_size;
  }

  // Separate from the constructor so that ~Impl joins the threads started before a failure.
  void start() {
    const std::size_t count = std::min<std::size_t>(std::size_t(resolve_threads(options.threads)),
                                                    std::max<std::size_t>(1, source.size()));
    for (std::size_t t = 0; t < count; ++t) workers.emplace_back([this] { work(); });
    schedule_up_to(0);
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
      tasks.clear();
    }
    work_ready.notify_all();
    for (std::thread& worker : workers) worker.join();
  }

  // Queues every batch up to `last` (inclusive) that is not queued yet.
  void schedule_up_to(std::size_t last) {
    for (; scheduled <= last && scheduled < num_batches; ++scheduled) {
      Slot& slot = slots[scheduled % 2];
      Batch& batch = slot.batch;
      const std::size_t begin = scheduled * options.batch_size;
      const std::size_t end = std::min(order.size(), begin + options.batch_size);
      batch.shape = shape;
      batch.indices.assign(order.begin() + begin, order.begin() + end);
      batch.labels.resize(batch.indices.size());
      for (std::size_t i = 0; i < batch.indices.size(); ++i) batch.labels[i] = source.label(batch.indices[i]);
      batch.pixels.resize(batch.indices.size() * shape.pixels());
      {
        std::lock_guard<std::mutex> lock(mutex);
        slot.remaining = batch.indices.size();
        slot.error = nullptr;
        for (std::size_t position = 0; position < batch.indices.size(); ++position) tasks.push_back({&slot, position});
      }
      work_ready.notify_all();
    }
  }

  void work() {
    std::vector<std::uint8_t> image(shape.pixels());
    for (;;) {
      Task task;
      bool skip;
      {
        std::unique_lock<std::mutex> lock(mutex);
        work_ready.wait(lock, [this] { return stopping || !tasks.empty(); });
        if (stopping) return;
        task = tasks.front();
        tasks.pop_front();
        skip = task.slot->error != nullptr;  // the batch has failed already
      }
      std::exception_ptr error;
      if (!skip) {
        try {
          produce(task.slot->batch, task.position, image);
        } catch (...) {
          error = std::current_exception();
        }
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (error && (!task.slot->error || task.position < task.slot->error_position)) {
        task.slot->error = error;
        task.slot->error_position = task.position;
      }
      if (--task.slot->remaining == 0) batch_done.notify_all();
    }
  }

  // Decodes, augments and normalises one image into its place in the batch. Random draws
  // depend only on (seed, epoch, source index), never on threads or batch composition.
  void produce(Batch& batch, std::size_t position, std::vector<std::uint8_t>& image) const {
    const std::size_t index = batch.indices[position];
    source.read(index, image.data());
    AugmentationDraw draw;
    if (options.augmentation.any())
      draw = draw_augmentation(options.augmentation, mix_seed(mix_seed(options.seed, options.epoch), index));
    crop_and_flip(image.data(), batch.pixels.data() + position * shape.pixels(), shape, draw,
                  [&](int channel, std::uint8_t v) { return lookup[std::size_t(channel)][v]; });
  }

  bool next(Batch& batch) {
    check_interrupted();
    if (failure) std::rethrow_exception(failure);
    if (delivered >= num_batches) return false;
    schedule_up_to(delivered + 1);  // keep one batch decoding ahead of the consumer
    Slot& slot = slots[delivered % 2];
    {
      std::unique_lock<std::mutex> lock(mutex);
      batch_done.wait(lock, [&] { return slot.remaining == 0; });
      failure = slot.error;
    }
    if (failure) std::rethrow_exception(failure);
    // Swapping hands the consumer's previous buffers back for reuse.
    std::swap(batch, slot.batch);
    ++delivered;
    return true;
  }
};

BatchLoader::BatchLoader(const ImageSource& source, Normalization norm, LoaderOptions options)
    : impl_(std::make_unique<Impl>(source, norm, options)) {
  impl_->start();
}

BatchLoader::~BatchLoader() = default;

bool BatchLoader::next(Batch& batch) { return impl_->next(batch); }
std::size_t BatchLoader::num_batches() const { return impl_->num_batches; }
std::size_t BatchLoader::num_images() const { return impl_->order.size(); }

}  // namespace imagescore
