import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
    alias(libs.plugins.kotlin.compose)
}

// LCE's Android archive (README: "LCE's AAR"): a TensorFlow Lite build whose interpreter also
// registers LCE's custom ops, under the same org.tensorflow.lite API. When it is absent the
// app links the stock TensorFlow Lite AAR, which runs float and int8 models only.
val lceAar: File = file("libs/lce-lite.aar")
val withLce: Boolean = lceAar.isFile

android {
    namespace = "org.bitlite.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.bitlite.demo"
        minSdk = 28 // ImageDecoder
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        buildConfigField("boolean", "WITH_LCE", withLce.toString())
        // LCE's hand-optimized kernels are arm64 only; x86_64 runs the app on the emulator.
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            // Signed with the debug key so `assembleRelease` installs for latency measurements.
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    buildFeatures {
        compose = true
        buildConfig = true
    }

    // The interpreter memory-maps model.tflite straight from the APK: keep it uncompressed.
    androidResources {
        noCompress += "tflite"
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

// Fail the build, not the app, when the exported model is missing or needs LCE's AAR.
val checkModelAssets by tasks.registering {
    description = "Checks that the bundled model.tflite/model.json exist and the runtime can run them."
    val assets = file("src/main/assets")
    val hasLce = withLce
    doLast {
        val model = assets.resolve("model.tflite")
        val metadata = assets.resolve("model.json")
        val missing = listOf(model, metadata).filterNot { it.isFile }
        if (missing.isNotEmpty()) {
            throw GradleException(
                "missing ${missing.joinToString { it.name }} in $assets: export a model first, from the " +
                    "bitlite root: python -m pipeline.export --android android_demo",
            )
        }
        val needsLce = (groovy.json.JsonSlurper().parse(metadata) as Map<*, *>)["needs_lce"] == true
        if (needsLce && !hasLce) {
            throw GradleException(
                "model.json says the model needs LCE's custom ops: put LCE's AAR at app/libs/lce-lite.aar " +
                    "(see android_demo/README.md) or export a float/int8 model",
            )
        }
    }
}

tasks.named("preBuild") { dependsOn(checkModelAssets) }

dependencies {
    if (withLce) implementation(files(lceAar)) else implementation(libs.tensorflow.lite)

    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.activity.compose)
    implementation(libs.androidx.lifecycle.viewmodel.compose)
    implementation(libs.androidx.lifecycle.runtime.compose)
    implementation(libs.kotlinx.coroutines.android)
    implementation(platform(libs.androidx.compose.bom))
    implementation(libs.androidx.compose.ui)
    implementation(libs.androidx.compose.ui.graphics)
    implementation(libs.androidx.compose.material3)
    debugImplementation(libs.androidx.compose.ui.tooling)

    testImplementation(libs.junit)
}
