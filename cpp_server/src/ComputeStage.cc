#include "ComputeStage.h"

#include <time.h>

#include "Clock.h"
#include "Log.h"

namespace finnsplit {
void ComputeStage::loop() {
  FrameSlot frame;
  while (in_->pop(&frame)) {
    uint8_t* result = outPool_->acquire();
    if (!result) {
      inPool_->release(frame.data);
      break;
    }
    int64_t start = monotonicNs();
    Status st = accelerator_->run(frame.data, result);
    stats_->compute.add(monotonicNs() - start);
    inPool_->release(frame.data);
    if (!st) {
      stats_->acceleratorErrors++;
      stats_->framesDropped++;
      LOG_ERROR("%s: frame %llu dropped: %s", accelerator_->name(), static_cast<unsigned long long>(frame.seq),
                st.message().c_str());
      outPool_->release(result);
      continue;
    }
    stats_->framesComputed++;
    if (!out_->push(FrameSlot{frame.seq, result})) {
      outPool_->release(result);
      break;
    }
  }
  // Anything left (only after an abort) is returned; then the sender sees the end of the stream.
  while (in_->popFor(&frame, 0)) inPool_->release(frame.data);
  out_->close();
}

}  // namespace finnsplit
